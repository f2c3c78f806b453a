"""AgentCore claims a query's one final message before it pushes anything for it."""

from __future__ import annotations

from typing import Any

from synapscribe import final_claim
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe.store import FINALS_ATTRIBUTE

from .pipeline_rig import OWNER, check_order, query_job

QUESTION = "What does rubisco fix?"


async def test_the_edge_claiming_first_means_agentcore_sends_nothing(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        rig.store.put_connection("c1", OWNER)
        job = query_job(session_id, "c1", text=QUESTION, voice=True)
        key = final_claim.key(job.requestId, job.receivedAtMs)
        assert final_claim.claim(rig.store, "c1", key, "edge") is True  # the edge's hand-off timed out
        await QueryPipeline(rig.deps).run(job)
        assert rig.gateway.messages.get("c1", []) == []
        assert rig.vllm_bodies == []  # not even asked the model
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None and stored["history"] == []
        assert rig.store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "edge"}  # type: ignore[index]


async def test_agentcore_claims_first_so_its_answer_is_the_only_final(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        rig.store.put_connection("c1", OWNER)
        job = query_job(session_id, "c1", text=QUESTION, voice=True)
        key = final_claim.key(job.requestId, job.receivedAtMs)
        await QueryPipeline(rig.deps).run(job)
        answer = check_order(rig.gateway.messages["c1"], voice_in=False)
        assert answer["type"] == "answer" and answer["requestId"] == job.requestId
        assert rig.store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "agentcore"}  # type: ignore[index]
        assert final_claim.claim(rig.store, "c1", key, "edge") is False  # a late edge timeout sends nothing


async def test_a_gone_connection_gets_nothing_and_costs_no_model_call(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        await QueryPipeline(rig.deps).run(query_job(session_id, "c-gone", text=QUESTION, voice=True))
        assert rig.gateway.messages == {} and rig.vllm_bodies == []


async def test_a_failing_claim_still_answers(make_rig: Any, monkeypatch: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()

        def broken(*args: Any) -> bool:
            raise RuntimeError("dynamodb unreachable")

        monkeypatch.setattr(final_claim, "claim", broken)
        job = query_job(session_id, "c1", text=QUESTION, voice=True)
        await QueryPipeline(rig.deps).run(job)
        assert check_order(rig.gateway.messages["c1"], voice_in=False)["type"] == "answer"
