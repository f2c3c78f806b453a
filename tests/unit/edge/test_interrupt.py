"""The contract's `cancel` at the edge: forwarded to AgentCore with the caller's identity, only
for the caller's own session; the edge itself sends nothing (AgentCore sends the stopped final)."""

from __future__ import annotations

import pytest
from synapscribe.edge.config import EdgeDeps

from .edge_support import AgentCoreRecorder, closed_port_url, one, send, table_snapshot


def test_cancel_is_forwarded_with_the_owner(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    before = table_snapshot(deps)
    out = send(deps, alice, {"action": "cancel", "sessionId": session_id, "requestId": "q-7"})
    assert out == []
    assert agentcore.requests == [("/v1/queries/cancel", {"owner": "alice", "requestId": "q-7"})]
    assert table_snapshot(deps) == before


def test_cancel_on_another_students_session_is_not_found(
    deps: EdgeDeps, alice: str, bob: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    msg = one(deps, bob, {"action": "cancel", "sessionId": session_id, "requestId": "q-7"})
    assert msg["code"] == "not_found" and msg["requestId"] == "q-7" and session_id in msg["message"]
    assert agentcore.requests == []


def test_cancel_needs_a_request_id(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    msg = one(deps, alice, {"action": "cancel", "sessionId": session_id})
    assert msg["code"] == "bad_request" and "requestId" in msg["message"]
    assert agentcore.requests == []


def test_cancel_when_agentcore_is_unreachable_sends_nothing(
    deps: EdgeDeps, alice: str, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()})
    )
    assert send(deps, alice, {"action": "cancel", "sessionId": session_id, "requestId": "q-8"}) == []
