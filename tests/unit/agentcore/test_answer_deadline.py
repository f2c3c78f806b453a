"""AgentCore's claim records when its final is due, and it clears that deadline as it sends the
final; when the sweeper took the final over first (AgentCore was past its deadline), AgentCore's
late final is not sent (issue 11 §3: exactly one final per question)."""

from __future__ import annotations

from typing import Any

from synapscribe import final_claim
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe.store import DEADLINES_ATTRIBUTE, FINALS_ATTRIBUTE

from .pipeline_rig import OWNER, check_order, query_job

QUESTION = "What does rubisco fix?"


async def test_the_claim_records_a_deadline_and_the_final_clears_it(make_rig: Any, monkeypatch: Any) -> None:
    async with make_rig() as rig:
        rig.store.put_connection("c1", OWNER)
        job = query_job(rig.session(), text=QUESTION, voice=True)
        key = final_claim.key(job.requestId, job.receivedAtMs)
        recorded: list[dict[str, Any]] = []
        claim = final_claim.claim

        def watching(store: Any, connection_id: str, request_key: str, by: str, deadline: Any = None) -> bool:
            recorded.append(dict(deadline))
            return bool(claim(store, connection_id, request_key, by, deadline))

        monkeypatch.setattr(final_claim, "claim", watching)
        before = rig.store.now()
        await QueryPipeline(rig.deps).run(job)
        assert check_order(rig.gateway.messages["c1"], voice_in=False)["type"] == "answer"
        lease = rig.deps.platform.quotas.job_lease_seconds
        assert recorded[0]["owner"] == OWNER and recorded[0]["requestId"] == job.requestId
        assert before + lease <= recorded[0]["until"] <= rig.store.now() + lease
        item = rig.store.get_connection("c1")
        assert item[FINALS_ATTRIBUTE] == {key: "agentcore"} and item[DEADLINES_ATTRIBUTE] == {}


async def test_a_final_after_the_sweeper_took_over_is_not_sent(make_rig: Any, monkeypatch: Any) -> None:
    async with make_rig() as rig:
        rig.store.put_connection("c1", OWNER)
        job = query_job(rig.session(), text=QUESTION, voice=True)
        key = final_claim.key(job.requestId, job.receivedAtMs)
        claim = final_claim.claim

        def then_overdue(
            store: Any, connection_id: str, request_key: str, by: str, deadline: Any = None
        ) -> bool:
            won = bool(claim(store, connection_id, request_key, by, deadline))
            # The sweeper runs while AgentCore is still answering, past the deadline.
            assert final_claim.take_over(rig.store, connection_id, request_key, int(deadline["until"]) + 1)
            return won

        monkeypatch.setattr(final_claim, "claim", then_overdue)
        await QueryPipeline(rig.deps).run(job)
        types = [m["type"] for m in rig.gateway.messages.get("c1", [])]
        assert "answer" not in types and "error" not in types, types
        assert rig.store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "sweeper"}
