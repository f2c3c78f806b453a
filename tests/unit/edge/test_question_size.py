"""The edge refuses a typed question surely over the question reserve (`too_large`, naming the limit)
before AgentCore sees it; anything that may fit goes through."""

from __future__ import annotations

from typing import Any

from synapscribe import final_claim, planner
from synapscribe.edge.config import EdgeDeps

from .edge_support import AgentCoreRecorder, one, send, table_snapshot


def ask(deps: EdgeDeps, alice: str, session_id: str, text: str) -> list[dict[str, Any]]:
    return send(deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-q", "text": text})


def test_a_long_cjk_question_is_too_large_naming_the_limit(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    text = "光合作用是什么" * 570  # 3990 characters (the contract allows 4000), 11,970 bytes
    before = table_snapshot(deps)
    msg = one(deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-q", "text": text})
    assert msg["type"] == "error" and msg["code"] == "too_large" and msg["requestId"] == "r-q", msg
    assert str(planner.question_text_limit_bytes(deps.platform)) in msg["message"]
    assert str(deps.platform.context.question_tokens) in msg["message"]
    assert agentcore.requests == []
    assert table_snapshot(deps) == before


def test_questions_that_may_fit_go_to_agentcore(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    limit = planner.question_text_limit_bytes(deps.platform)
    # AgentCore gives each question's job slot back when it has answered it (quotas.jobs_in_flight).
    agentcore.on_job = lambda job: deps.quotas.finish_job(
        job["owner"], final_claim.key(job["requestId"], job["receivedAtMs"])
    )
    for text in ("What is ATP?", "x" * 4000, "光" * (limit // 3)):
        assert ask(deps, alice, session_id, text) == []
    assert [job["text"] for _, job in agentcore.requests] == ["What is ATP?", "x" * 4000, "光" * (limit // 3)]
    msg = one(deps, alice, {"action": "query", "sessionId": session_id, "text": "光" * (limit // 3 + 1)})
    assert msg["code"] == "too_large"
    assert len(agentcore.requests) == 3
