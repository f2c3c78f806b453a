"""AgentCore gives a question's job slot (quotas.jobs_in_flight) back when the question ends,
answered or not, so an identity's next question is not refused for one already answered."""

from __future__ import annotations

from typing import Any

from synapscribe import final_claim
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe.quotas import OwnerQuotas

from .pipeline_rig import OWNER, check_order, query_job

QUESTION = "What does rubisco fix?"


async def test_an_answered_question_gives_its_slot_back(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        rig.store.put_connection("c1", OWNER)
        quotas = OwnerQuotas(rig.store, rig.deps.platform)
        job = query_job(session_id, "c1", text=QUESTION, voice=False)
        quotas.start_question(OWNER, final_claim.key(job.requestId, job.receivedAtMs))  # as the edge does
        other = final_claim.key("req_other", job.receivedAtMs)
        quotas.start_question(OWNER, other)
        await QueryPipeline(rig.deps).run(job)
        assert check_order(rig.gateway.messages["c1"], voice_in=False)["type"] == "answer"
        assert set(quotas.ledger(OWNER).jobs) == {other}  # only this question's slot came back


async def test_a_question_not_answered_gives_its_slot_back_too(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        quotas = OwnerQuotas(rig.store, rig.deps.platform)
        job = query_job(
            session_id, "c-gone", text=QUESTION, voice=False
        )  # the client left: nothing is answered
        quotas.start_question(OWNER, final_claim.key(job.requestId, job.receivedAtMs))
        await QueryPipeline(rig.deps).run(job)
        assert quotas.ledger(OWNER).jobs == {}
