"""The sweeper answers a question whose AgentCore died mid-answer (issue 11 §3), on moto.

AgentCore's final-message claim carries a deadline (final_claim.claim with a deadline); past it
the sweeper takes the claim over (final_claim.take_over), pushes one `error`
`upstream_unavailable` and gives the owner's job slot back. A live deadline is left alone, a
second run sends nothing more, and a gone connection (410) only drops the message."""

from __future__ import annotations

import json

import pytest
from synapscribe import final_claim
from synapscribe.connections import ConnectionPusher
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.sweeper import sweep
from synapscribe.edge.websocket_handler import handle
from synapscribe.store import DEADLINES_ATTRIBUTE, FINALS_ATTRIBUTE, SWEEP_ANSWER

from .edge_support import CONNECTIONS_ENDPOINT, AgentCoreRecorder, GoneClient, make_lecture, pushed, ws_event


def in_flight(deps: EdgeDeps, connection_id: str, request_id: str, until: int) -> str:
    """A question AgentCore claimed (as its pipeline does), holding the owner's job slot."""
    if deps.store.get_connection(connection_id) is None:
        deps.store.put_connection(connection_id, "alice")
    key = final_claim.key(request_id, 1_000)
    deps.quotas.start_question("alice", key)
    record = {"until": until, "owner": "alice", "requestId": request_id}
    assert final_claim.claim(deps.store, connection_id, key, "agentcore", record) is True
    return key


def test_an_overdue_question_gets_one_error_and_a_live_one_is_left(deps: EdgeDeps) -> None:
    now = deps.store.now()
    dead = in_flight(deps, "c1", "q-dead", until=now - 1)
    live = in_flight(deps, "c1", "q-live", until=now + 300)

    report = sweep(deps)

    assert report.answered == [dead] and report.failed == []
    errors = [m for m in pushed("c1") if m["type"] == "error"]
    assert [(m["requestId"], m["code"]) for m in errors] == [("q-dead", "upstream_unavailable")]
    item = deps.store.get_connection("c1")
    assert item is not None
    assert item[FINALS_ATTRIBUTE] == {dead: "sweeper", live: "agentcore"}
    assert list(item[DEADLINES_ATTRIBUTE]) == [live]
    assert set(deps.quotas.ledger("alice").jobs) == {live}  # the dead question's slot came back
    # A second run finds nothing overdue: still exactly one error.
    assert sweep(deps).answered == []
    assert len([m for m in pushed("c1") if m["type"] == "error"]) == 1


def test_agentcore_final_after_the_sweeper_loses(deps: EdgeDeps) -> None:
    now = deps.store.now()
    key = in_flight(deps, "c1", "q-late", until=now - 1)
    sweep(deps)
    # AgentCore comes back (a slow answer, not a dead one) and tries to send its final: it loses.
    assert final_claim.settle(deps.store, "c1", key) is False
    assert final_claim.claim(deps.store, "c1", key, "edge") is False


def test_a_settled_question_is_never_taken_over(deps: EdgeDeps) -> None:
    now = deps.store.now()
    key = in_flight(deps, "c1", "q-done", until=now - 1)
    assert final_claim.settle(deps.store, "c1", key) is True  # AgentCore sent its final just in time
    assert sweep(deps).answered == [] and pushed("c1") == []
    assert final_claim.take_over(deps.store, "c1", key, now + 10**6) is False


def test_a_gone_connection_only_drops_the_error(deps: EdgeDeps) -> None:
    gone = GoneClient()
    deps.pushers[CONNECTIONS_ENDPOINT] = ConnectionPusher(CONNECTIONS_ENDPOINT, client=gone)
    key = in_flight(deps, "c-gone", "q-gone", until=deps.store.now() - 1)
    report = sweep(deps)
    assert report.answered == [key] and report.failed == [] and gone.calls == 1
    assert deps.quotas.ledger("alice").jobs == {}


def test_the_take_over_is_conditional_on_the_deadline(deps: EdgeDeps) -> None:
    now = deps.store.now()
    key = in_flight(deps, "c1", "q-x", until=now)
    assert final_claim.take_over(deps.store, "c1", key, now) is False  # not past `until` yet
    assert final_claim.take_over(deps.store, "c1", key, now + 1) is True
    assert final_claim.take_over(deps.store, "c1", key, now + 1) is False  # an overlapping run loses


@pytest.mark.parametrize("by", ["robot", ""])
def test_an_unknown_claimant_is_refused(deps: EdgeDeps, by: str) -> None:
    deps.store.put_connection("c1", "alice")
    with pytest.raises(ValueError, match="by must be one of"):
        final_claim.claim(deps.store, "c1", "q@1", by)


def test_a_connection_written_before_deadlines_gets_the_map_on_its_first_claim(deps: EdgeDeps) -> None:
    # As put_connection wrote it before `answerDeadlines` existed (it had `finals` already).
    deps.store.connections.put_item(Item={"connectionId": "c-old", "owner": "alice", FINALS_ATTRIBUTE: {}})
    key = in_flight(deps, "c-old", "q-old", until=deps.store.now() - 1)
    item = deps.store.get_connection("c-old")
    assert item is not None and item[DEADLINES_ATTRIBUTE][key]["requestId"] == "q-old"
    assert sweep(deps).answered == [key]


def test_a_question_agentcore_accepted_and_never_claimed_gets_one_error(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AgentCore answers the hand-off 202 and dies before its claim: the deadline the edge
    recorded at the hand-off lets the sweeper send the one final (issue 11 §3)."""
    assert handle(ws_event("$connect", "c1", identity="alice"), deps)["statusCode"] == 200
    lecture_id = make_lecture(deps, "alice")
    deps.store.create_session("ses_unclaimed", "alice", lecture_id, "audio")
    now = deps.store.now()
    query = {
        "action": "query",
        "sessionId": "ses_unclaimed",
        "requestId": "q-lost",
        "text": "hi",
        "voice": False,
    }
    assert handle(ws_event("$default", "c1", body=json.dumps(query)), deps)["statusCode"] == 200
    assert pushed("c1") == [] and len(agentcore.requests) == 1  # accepted; AgentCore never claims
    job = agentcore.requests[0][1]
    key = final_claim.key("q-lost", job["receivedAtMs"])
    item = deps.store.get_connection("c1")
    assert item is not None and item[FINALS_ATTRIBUTE] == {}
    record = item[DEADLINES_ATTRIBUTE][key]
    lease = deps.platform.quotas.job_lease_seconds
    assert record["owner"] == "alice" and record["requestId"] == "q-lost"
    assert now + lease <= record["until"] <= deps.store.now() + lease
    assert set(deps.quotas.ledger("alice").jobs) == {key}

    assert sweep(deps).answered == []  # within the deadline: AgentCore may still claim
    monkeypatch.setattr(deps.store, "_clock", lambda: record["until"] + 1)
    assert sweep(deps).answered == [key]
    errors = pushed("c1")
    assert [(m["type"], m["code"], m["requestId"]) for m in errors] == [
        ("error", "upstream_unavailable", "q-lost")
    ]
    assert deps.quotas.ledger("alice").jobs == {}
    # An AgentCore that was only slow claims too late and sends nothing; no later run sends more.
    assert (
        final_claim.claim(deps.store, "c1", key, "agentcore", {**record, "until": record["until"] + lease})
        is False
    )
    assert sweep(deps).answered == [] and len(pushed("c1")) == 1


def test_a_refused_hand_off_leaves_no_deadline_behind(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert handle(ws_event("$connect", "c1", identity="alice"), deps)["statusCode"] == 200
    deps.store.create_session("ses_busy", "alice", "lec_busy", "audio")
    agentcore.status = 503
    query = {"action": "query", "sessionId": "ses_busy", "requestId": "q-busy", "text": "hi", "voice": False}
    assert handle(ws_event("$default", "c1", body=json.dumps(query)), deps)["statusCode"] == 200
    assert [m["code"] for m in pushed("c1")] == ["busy"]
    item = deps.store.get_connection("c1")
    assert item is not None and item[DEADLINES_ATTRIBUTE] == {} and item[FINALS_ATTRIBUTE] == {}
    monkeypatch.setattr(deps.store, "_clock", lambda: 10**10)
    assert sweep(deps).answered == [] and len(pushed("c1")) == 1


def test_a_connection_leaves_the_sweep_index_when_nothing_is_due(deps: EdgeDeps) -> None:
    now = deps.store.now()
    in_flight(deps, "c-done", "q-dead", until=now - 1)
    in_flight(deps, "c-busy", "q-live", until=now + 300)
    deps.store.put_connection("c-idle", "alice")

    def indexed() -> list[str]:
        return sorted(
            i["connectionId"] for i in deps.store.sweep_candidates(deps.store.connections, SWEEP_ANSWER)
        )

    assert indexed() == ["c-busy", "c-done"]
    assert len(sweep(deps).answered) == 1
    # c-done had only the overdue question: out. c-busy still has a live one: in.
    assert indexed() == ["c-busy"]
