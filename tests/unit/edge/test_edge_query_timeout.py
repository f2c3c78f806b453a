"""The edge's query hand-off timing out: exactly one final message whoever sends it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from edge_support import AgentCoreRecorder, pushed, ws_event
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.websocket_handler import handle
from synapscribe.store import DEADLINES_ATTRIBUTE, FINALS_ATTRIBUTE, final_claim_key

TIMEOUT = 0.3


@pytest.fixture
def slow(deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch) -> AgentCoreRecorder:
    """AgentCore answering its 202 only after the edge's timeout; a connection and a session."""
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_timeout_seconds": TIMEOUT})
    )
    agentcore.delay = TIMEOUT + 0.5
    assert handle(ws_event("$connect", "c1", identity="alice"), deps)["statusCode"] == 200
    lecture_id = "lec_timeout"
    deps.store.create_pending_lecture(
        lecture_id, "alice", f"lectures/alice/{lecture_id}.mp3", "audio/mpeg", 1000, None, "l.mp3"
    )
    deps.store.update_lecture(
        lecture_id, {"status": "ready", "contextMode": "audio", "durationSeconds": 60.0}
    )
    deps.store.create_session("ses_timeout", "alice", lecture_id, "audio")
    return agentcore


def _query(deps: EdgeDeps, request_id: str | None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"action": "query", "sessionId": "ses_timeout", "text": "hi", "voice": False}
    if request_id is not None:
        message["requestId"] = request_id
    assert handle(ws_event("$default", "c1", body=json.dumps(message)), deps)["statusCode"] == 200
    return pushed("c1")


def _finals(deps: EdgeDeps) -> dict[str, str]:
    conn = deps.store.get_connection("c1")
    assert conn is not None
    return dict(conn[FINALS_ATTRIBUTE])


@pytest.mark.parametrize("request_id", ["r-1", None])
def test_timeout_before_agentcore_started_sends_one_upstream_unavailable(
    deps: EdgeDeps, slow: AgentCoreRecorder, request_id: str | None
) -> None:
    out = _query(deps, request_id)
    assert len(out) == 1 and out[0]["type"] == "error" and out[0]["code"] == "upstream_unavailable"
    assert "did not answer in time" in out[0]["message"]
    assert out[0].get("requestId") == request_id
    job = slow.requests[-1][1]
    key = final_claim_key(job["requestId"], job["receivedAtMs"])
    assert _finals(deps) == {key: "edge"}
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[DEADLINES_ATTRIBUTE] == {}  # the edge answered: nothing to sweep
    # AgentCore starting the job late loses the claim and sends nothing (tests/unit/agentcore/test_agentcore_final_claim.py).
    assert deps.store.claim_final("c1", key, "agentcore") is False


def test_timeout_after_agentcore_claimed_sends_nothing_from_the_edge(
    deps: EdgeDeps, slow: AgentCoreRecorder
) -> None:
    claims: list[bool] = []

    def agentcore_starts(job: dict[str, Any]) -> None:
        key = final_claim_key(job["requestId"], job["receivedAtMs"])
        claims.append(deps.store.claim_final(job["connectionId"], key, "agentcore"))

    slow.on_job = agentcore_starts
    assert _query(deps, "r-2") == []
    assert claims == [True]
    job = slow.requests[-1][1]
    assert _finals(deps) == {final_claim_key("r-2", job["receivedAtMs"]): "agentcore"}


def test_a_failing_claim_still_tells_the_client(
    deps: EdgeDeps, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bool:
        raise RuntimeError("dynamodb unreachable")

    monkeypatch.setattr(deps.store, "claim_final", broken)
    out = _query(deps, "r-3")
    assert [m["code"] for m in out] == ["upstream_unavailable"] and out[0]["requestId"] == "r-3"
    # The hand-off's deadline is withdrawn, so the sweeper does not send a second error later.
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[DEADLINES_ATTRIBUTE] == {}


def test_an_unreachable_agentcore_is_not_claimed(
    deps: EdgeDeps, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused outright (not a timeout): AgentCore surely has not got the job, so no claim.
    from edge_support import closed_port_url

    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()})
    )
    out = _query(deps, "r-4")
    assert [m["code"] for m in out] == ["upstream_unavailable"]
    assert _finals(deps) == {}
