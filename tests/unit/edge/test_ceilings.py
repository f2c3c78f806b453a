"""The service's daily ceilings, per-address allowances and the intake switch, through the
WebSocket handler on moto (issue 18): refused before anything is stored, with `service_limit`."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from synapscribe.ceilings import DailyCounters, address_key
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.intake import CACHE_SECONDS, IntakeSwitch, parse_value
from synapscribe.edge.websocket_handler import handle
from synapscribe.platform import PerAddress

from .edge_support import AgentCoreRecorder, make_lecture, pushed, table_snapshot, ws_event

ROOMY = {"daily_uploads": 1000, "daily_upload_bytes": 10**12, "connections_per_minute": 1000}


def configure(
    deps: EdgeDeps,
    monkeypatch: pytest.MonkeyPatch,
    per_address: dict[str, int] | None = None,
    **ceilings: Any,
) -> None:
    c = deps.platform.ceilings.model_copy(
        update={"daily_lectures": 1000, "daily_questions": 1000, **ceilings}
    )
    a = PerAddress(**{**ROOMY, **(per_address or {})})
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"ceilings": c, "per_address": a}))


def connect(deps: EdgeDeps, cid: str, identity: str, ip: str | None) -> dict[str, Any]:
    return handle(ws_event("$connect", cid, identity=identity, source_ip=ip), deps)


def send(deps: EdgeDeps, cid: str, body: dict[str, Any], ip: str | None) -> dict[str, Any]:
    before = len(pushed(cid))
    assert handle(ws_event("$default", cid, body=json.dumps(body), source_ip=ip), deps)["statusCode"] == 200
    (msg,) = pushed(cid)[before:]
    return msg


def upload(size: int = 1000, kind: str = "lecture") -> dict[str, Any]:
    return {
        "action": "createUpload",
        "kind": kind,
        "filename": "l.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": size,
    }


def stored(deps: EdgeDeps) -> dict[str, Any]:
    """Everything but the day counters and message windows (which count refusals too)."""
    snap = table_snapshot(deps)
    snap["owners"] = sorted(
        (
            i
            for i in deps.store.limits.scan(ConsistentRead=True)["Items"]
            if str(i["limitId"]).startswith("owner#")
        ),
        key=lambda i: str(i["limitId"]),
    )
    return snap


def counter(deps: EdgeDeps, name: str) -> int:
    return DailyCounters(deps.store.limits, deps.store.now).value(name)


def assert_service_limit(msg: dict[str, Any], *words: str) -> None:
    assert msg["type"] == "error" and msg["code"] == "service_limit", msg
    for word in words:
        assert word in msg["message"], msg


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("", None),
        (None, None),
        ("not-an-address", None),
    ],
)
def test_address_key_is_ipv4_or_ipv6_slash_64(ip: str | None, key: str | None) -> None:
    assert address_key(ip) == key


def test_connect_without_a_source_address_is_refused(deps: EdgeDeps) -> None:
    resp = connect(deps, "c-none", "alice", None)
    assert resp["statusCode"] == 403 and deps.store.get_connection("c-none") is None


def test_message_without_a_source_address_fails_closed(deps: EdgeDeps, alice: str) -> None:
    before = stored(deps)
    msg = send(deps, alice, upload(), None)
    assert msg["code"] == "rate_limited" and "source address" in msg["message"]
    assert stored(deps) == before


def test_new_connections_per_minute_per_address(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(deps, monkeypatch, per_address={"connections_per_minute": 3})
    codes = [connect(deps, f"c{i}", f"id{i}", "2001:db8:9:9::1")["statusCode"] for i in range(3)]
    # The same /64 is one address: a fourth connection from another host in it is refused.
    refused = connect(deps, "c3", "id3", "2001:db8:9:9:1234::7")
    assert codes == [200, 200, 200] and refused["statusCode"] == 429 and "a minute" in refused["body"]
    assert deps.store.get_connection("c3") is None
    assert connect(deps, "c4", "id4", "198.51.100.200")["statusCode"] == 200  # another address


# --------------------------------------------------------------------------- uploads


def test_daily_lectures_ceiling_across_identities_and_addresses(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(deps, monkeypatch, daily_lectures=3)
    for i in range(3):
        assert connect(deps, f"c{i}", f"id{i}", f"198.51.100.{i + 1}")["statusCode"] == 200
        assert send(deps, f"c{i}", upload(), f"198.51.100.{i + 1}")["type"] == "uploadUrl"
    assert connect(deps, "c9", "id9", "192.0.2.9")["statusCode"] == 200
    before = stored(deps)
    msg = send(deps, "c9", {**upload(), "requestId": "r-9"}, "192.0.2.9")
    assert_service_limit(msg, "today's limit", "try again tomorrow", "3 lectures")
    assert msg["requestId"] == "r-9"
    assert stored(deps) == before  # no lecture item, no owner charge, no object
    assert counter(deps, "lectures") == 3


def test_daily_upload_bytes_ceiling(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(deps, monkeypatch, daily_upload_bytes=2500)
    assert connect(deps, "c1", "a", "198.51.100.1")["statusCode"] == 200
    assert send(deps, "c1", upload(2000), "198.51.100.1")["type"] == "uploadUrl"
    assert_service_limit(send(deps, "c1", upload(501), "198.51.100.1"), "2500 bytes uploaded today")
    assert send(deps, "c1", upload(500, "query"), "198.51.100.1")["type"] == "uploadUrl"  # exactly full
    assert counter(deps, "upload_bytes") == 2500


def test_per_address_uploads_are_shared_by_its_identities(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(deps, monkeypatch, per_address={"daily_uploads": 2})
    ip = "203.0.113.50"
    for i in range(3):
        assert connect(deps, f"m{i}", f"minted-{i}", ip)["statusCode"] == 200
    assert send(deps, "m0", upload(), ip)["type"] == "uploadUrl"
    assert send(deps, "m1", upload(), ip)["type"] == "uploadUrl"
    before = stored(deps)
    assert_service_limit(send(deps, "m2", upload(), ip), "uploads from this address today")
    assert stored(deps) == before
    # An honest student elsewhere is served.
    assert connect(deps, "h", "honest", "192.0.2.77")["statusCode"] == 200
    assert send(deps, "h", upload(), "192.0.2.77")["type"] == "uploadUrl"


def test_per_address_upload_bytes(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(deps, monkeypatch, per_address={"daily_upload_bytes": 1500})
    assert connect(deps, "c1", "a", "2001:db8::1")["statusCode"] == 200
    assert send(deps, "c1", upload(1000), "2001:db8::1")["type"] == "uploadUrl"
    assert_service_limit(send(deps, "c1", upload(501), "2001:db8::2"), "bytes uploaded from this address")


def test_an_owner_quota_refusal_gives_the_service_count_back(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(deps, monkeypatch, daily_lectures=5)
    quotas = deps.platform.quotas.model_copy(update={"lectures": 1})
    monkeypatch.setattr(deps, "platform", deps.platform.model_copy(update={"quotas": quotas}))
    assert connect(deps, "c1", "a", "198.51.100.1")["statusCode"] == 200
    assert send(deps, "c1", upload(), "198.51.100.1")["type"] == "uploadUrl"
    assert send(deps, "c1", upload(), "198.51.100.1")["code"] == "quota_exceeded"
    assert counter(deps, "lectures") == 1 and counter(deps, "addr#198.51.100.1#uploads") == 1


def test_a_counter_never_passes_its_limit(deps: EdgeDeps) -> None:
    """One conditional ADD per charge: six of 3 fit in 20, the seventh is refused and counts
    nothing; a refund gives room back."""
    counters = DailyCounters(deps.store.limits, deps.store.now)
    assert [counters.add("seq", 3, 20) for _ in range(8)] == [True] * 6 + [False] * 2
    assert counters.value("seq") == 18
    assert not counters.add("seq", 21, 20) and counters.value("seq") == 18
    counters.refund("seq", 3)
    assert counters.add("seq", 5, 20) and counters.value("seq") == 20


def test_counters_never_pass_their_limit_under_concurrency(deps: EdgeDeps) -> None:
    """Eight at once: still six. DynamoDB checks and applies a conditional write as one step;
    moto does only with its writes serialized (local/moto_atomic.py, as the local stack runs it)."""
    from synapscribe_local.moto_atomic import atomic_dynamodb_writes

    atomic_dynamodb_writes()
    counters = DailyCounters(deps.store.limits, deps.store.now)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: counters.add("race", 3, 20), range(40)))
    assert (sum(results), counters.value("race")) == (6, 18)


# --------------------------------------------------------------------------- questions


def _session(deps: EdgeDeps, cid: str, owner: str, ip: str) -> str:
    assert connect(deps, cid, owner, ip)["statusCode"] == 200
    lecture_id = make_lecture(deps, owner)
    return str(send(deps, cid, {"action": "startSession", "lectureId": lecture_id}, ip)["sessionId"])


def test_daily_questions_ceiling(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(deps, monkeypatch, daily_questions=2)
    ses = _session(deps, "c1", "alice", "198.51.100.1")
    for i in range(2):
        assert handle(
            ws_event(
                "$default",
                "c1",
                body=json.dumps({"action": "query", "sessionId": ses, "text": f"q{i}"}),
                source_ip="198.51.100.1",
            ),
            deps,
        )
    msg = send(
        deps, "c1", {"action": "query", "sessionId": ses, "text": "q3", "requestId": "r-3"}, "198.51.100.1"
    )
    assert_service_limit(msg, "2 questions answered today")
    assert msg["requestId"] == "r-3" and len(agentcore.requests) == 2
    assert not any(k.startswith("r-3@") for k in deps.quotas.ledger("alice").jobs)


def test_gpu_host_hours_stop_questions(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(deps, monkeypatch, daily_gpu_host_hours=2)
    ses = _session(deps, "c1", "alice", "198.51.100.1")
    DailyCounters(deps.store.limits, deps.store.now).accrue("gpu_host_seconds", 2 * 3600)
    msg = send(deps, "c1", {"action": "query", "sessionId": ses, "text": "hi"}, "198.51.100.1")
    assert_service_limit(msg, "2 hours")
    assert agentcore.requests == [] and counter(deps, "questions") == 0


# --------------------------------------------------------------------------- intake switch


@pytest.fixture
def intake(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> Any:
    ssm = boto3.client("ssm")
    name = "/synapscribe/test/intake"
    ssm.put_parameter(
        Name=name, Type="String", Value=json.dumps({"uploads": "open", "questions": "open"}), Overwrite=True
    )
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"intake_parameter": name}))
    monkeypatch.setattr(deps, "intake_switch", None)
    yield ssm, name
    ssm.delete_parameter(Name=name)


def test_closed_uploads_store_nothing_and_questions_go_on(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, intake: Any
) -> None:
    ssm, name = intake
    ses = _session(deps, "c1", "alice", "198.51.100.1")
    ssm.put_parameter(
        Name=name, Type="String", Value='{"uploads": "closed", "questions": "open"}', Overwrite=True
    )
    deps.intake_switch = None  # past the cache
    before = stored(deps)
    assert_service_limit(send(deps, "c1", upload(), "198.51.100.1"), "not taking new uploads")
    assert stored(deps) == before and counter(deps, "lectures") == 0
    assert handle(
        ws_event(
            "$default",
            "c1",
            body=json.dumps({"action": "query", "sessionId": ses, "text": "hi"}),
            source_ip="198.51.100.1",
        ),
        deps,
    )
    assert len(agentcore.requests) == 1


def test_closed_questions(deps: EdgeDeps, agentcore: AgentCoreRecorder, intake: Any) -> None:
    ssm, name = intake
    ses = _session(deps, "c1", "alice", "198.51.100.1")
    ssm.put_parameter(
        Name=name, Type="String", Value='{"uploads": "open", "questions": "closed"}', Overwrite=True
    )
    deps.intake_switch = None
    msg = send(
        deps, "c1", {"action": "query", "sessionId": ses, "text": "hi", "requestId": "r-1"}, "198.51.100.1"
    )
    assert_service_limit(msg, "not taking new questions")
    assert msg["requestId"] == "r-1" and agentcore.requests == [] and deps.quotas.ledger("alice").jobs == {}


def test_the_switch_is_cached_and_a_garbled_value_closes(deps: EdgeDeps, intake: Any) -> None:
    ssm, name = intake
    now = [1000.0]
    switch = IntakeSwitch(ssm, name, clock=lambda: now[0])
    assert switch.state() == {"uploads": "open", "questions": "open"}
    ssm.put_parameter(Name=name, Type="String", Value="closed please", Overwrite=True)
    now[0] += CACHE_SECONDS - 1
    assert switch.state()["uploads"] == "open"  # still cached
    now[0] += 1
    assert switch.state() == {"uploads": "closed", "questions": "closed"}
    assert parse_value('{"uploads": "open"}') == {"uploads": "closed", "questions": "closed"}
    assert parse_value('{"uploads": "open", "questions": "shut"}')["questions"] == "closed"
    # A missing parameter (or SSM down) keeps the last state read.
    ssm.delete_parameter(Name=name)
    now[0] += CACHE_SECONDS
    assert switch.state() == {"uploads": "closed", "questions": "closed"}
    ssm.put_parameter(Name=name, Type="String", Value='{"uploads": "open", "questions": "open"}')
