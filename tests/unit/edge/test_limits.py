"""Per-owner quotas, message rates, deleteLecture and the lecture TTLs, through the WebSocket
handler and the validation Lambda on moto (issue 11)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from synapscribe import final_claim
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.websocket_handler import handle
from synapscribe.quotas import OwnerQuotas

from .edge_support import AgentCoreRecorder, one, pushed, send, table_snapshot, upload, validate, ws_event


def with_quotas(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch, **quotas: int) -> None:
    platform = deps.platform.model_copy(update={"quotas": deps.platform.quotas.model_copy(update=quotas)})
    monkeypatch.setattr(deps, "platform", platform)


def lecture_upload(size: int = 1000, rid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "l.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": size,
    }
    if rid:
        body["requestId"] = rid
    return body


def query_upload() -> dict[str, Any]:
    return {
        "action": "createUpload",
        "kind": "query",
        "filename": "q.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": 100,
    }


def limits_snapshot(deps: EdgeDeps) -> list[dict[str, Any]]:
    return sorted(deps.store.limits.scan(ConsistentRead=True)["Items"], key=lambda i: str(i["limitId"]))


def everything(deps: EdgeDeps) -> dict[str, Any]:
    """Every table (the limits ledger too, without the message-rate windows) and every object."""
    snap = table_snapshot(deps)
    snap["limits"] = [i for i in limits_snapshot(deps) if str(i["limitId"]).startswith("owner#")]
    return snap


def assert_refused(msg: dict[str, Any], quota: str, limit: int) -> None:
    assert msg["type"] == "error" and msg["code"] == "quota_exceeded", msg
    assert quota in msg["message"] and str(limit) in msg["message"], msg


# --------------------------------------------------------------------------- quotas


def test_lecture_quota_refuses_the_next_upload_and_stores_nothing(
    deps: EdgeDeps, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, lectures=2, uploads_in_progress=10)
    for _ in range(2):
        assert one(deps, alice, lecture_upload())["type"] == "uploadUrl"
    before = everything(deps)
    msg = one(deps, alice, lecture_upload(rid="r-3"))
    assert_refused(msg, "lectures", 2)
    assert msg["requestId"] == "r-3"
    assert everything(deps) == before
    # Another identity is not affected.
    handle(ws_event("$connect", "conn-carol", identity="carol"), deps)
    assert one(deps, "conn-carol", lecture_upload())["type"] == "uploadUrl"


def test_stored_bytes_quota_counts_declared_sizes(
    deps: EdgeDeps, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, stored_bytes=5000)
    assert one(deps, alice, lecture_upload(3000))["type"] == "uploadUrl"
    before = everything(deps)
    assert_refused(one(deps, alice, lecture_upload(2001)), "stored_bytes", 5000)
    assert everything(deps) == before
    assert one(deps, alice, lecture_upload(2000))["type"] == "uploadUrl"


def test_uploads_in_progress_quota_and_its_expiry(
    deps: EdgeDeps, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, uploads_in_progress=2)
    assert one(deps, alice, query_upload())["type"] == "uploadUrl"
    assert one(deps, alice, lecture_upload())["type"] == "uploadUrl"
    before = everything(deps)
    assert_refused(one(deps, alice, query_upload()), "uploads_in_progress", 2)
    assert everything(deps) == before
    # Uploads that never come end with their URL (the query's) or the pending lecture's life.
    now = deps.store.now()
    monkeypatch.setattr(deps.store, "_clock", lambda: now + deps.platform.storage.pending_upload_seconds + 1)
    assert one(deps, alice, query_upload())["type"] == "uploadUrl"
    assert len(OwnerQuotas(deps.store, deps.platform).ledger("alice").uploads) == 1


def test_questions_per_minute_and_jobs_in_flight(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, questions_per_minute=3, jobs_in_flight=2)
    now = (deps.store.now() // 60 + 1) * 60 + 1  # the start of the next minute (clocks never go back)
    monkeypatch.setattr(deps.store, "_clock", lambda: now)

    def ask(rid: str) -> list[dict[str, Any]]:
        return send(deps, alice, {"action": "query", "sessionId": session_id, "requestId": rid, "text": "hi"})

    assert ask("q1") == [] and ask("q2") == []
    assert len(agentcore.requests) == 2
    refused = ask("q3")
    assert len(refused) == 1 and refused[0]["requestId"] == "q3"
    assert_refused(refused[0], "jobs_in_flight", 2)
    assert len(agentcore.requests) == 2  # AgentCore never saw it
    # AgentCore answers one (and gives its slot back): the next question goes through.
    first = agentcore.requests[0][1]
    deps.quotas.finish_job("alice", final_claim.key(first["requestId"], first["receivedAtMs"]))
    assert ask("q4") == []
    # Three questions (q1, q2, q4) counted in this minute; q3 was refused before it was counted.
    deps.quotas.finish_job("alice", final_claim.key("q2", agentcore.requests[1][1]["receivedAtMs"]))
    assert_refused(ask("q5")[0], "questions_per_minute", 3)
    monkeypatch.setattr(deps.store, "_clock", lambda: now + 60)
    assert ask("q6") == []


def test_a_failed_handoff_gives_the_job_slot_back(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, jobs_in_flight=1)
    agentcore.status = 503
    for rid in ("b1", "b2"):
        msg = one(deps, alice, {"action": "query", "sessionId": session_id, "requestId": rid, "text": "hi"})
        assert msg["code"] == "busy", msg
    assert OwnerQuotas(deps.store, deps.platform).ledger("alice").jobs == {}


def test_two_concurrent_uploads_at_the_limit_only_one_wins(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, lectures=1)
    for cid in ("conn-a1", "conn-a2"):
        handle(ws_event("$connect", cid, identity="alice"), deps)
    # Both read the ledger before either writes: the conditional write lets exactly one through.
    barrier = threading.Barrier(2)
    quotas_read = OwnerQuotas._read

    def read_together(self: OwnerQuotas, owner: str) -> Any:
        item = quotas_read(self, owner)
        if item is None:
            barrier.wait(timeout=10)
        return item

    monkeypatch.setattr(OwnerQuotas, "_read", read_together)
    # DynamoDB applies conditional writes to one item one at a time (the condition is checked
    # atomically with the write); moto in-process does not lock, so the test serializes them.
    write_lock = threading.Lock()
    quotas_write = OwnerQuotas._write

    def write_in_turn(self: OwnerQuotas, *args: Any) -> bool:
        with write_lock:
            return quotas_write(self, *args)

    monkeypatch.setattr(OwnerQuotas, "_write", write_in_turn)
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda cid: one(deps, cid, lecture_upload()), ["conn-a1", "conn-a2"]))
    kinds = sorted(r["type"] for r in replies)
    assert kinds == ["error", "uploadUrl"], replies
    assert_refused(next(r for r in replies if r["type"] == "error"), "lectures", 1)
    lectures = [i for i in deps.store.lectures.scan(ConsistentRead=True)["Items"] if i["owner"] == "alice"]
    assert len(lectures) == 1


def test_two_concurrent_uploads_on_an_existing_ledger_only_one_wins(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race on a ledger that exists already: the write is conditioned on the version both
    read, not only on the item's existence (which both would pass)."""
    with_quotas(deps, monkeypatch, lectures=2)
    for cid in ("conn-a1", "conn-a2"):
        handle(ws_event("$connect", cid, identity="alice"), deps)
    assert one(deps, "conn-a1", lecture_upload())["type"] == "uploadUrl"
    assert OwnerQuotas(deps.store, deps.platform).ledger("alice").version > 0
    # Each racing thread's first read waits for the other's: both read the same version.
    barrier = threading.Barrier(2)
    first_read = threading.local()
    racing = threading.Event()
    quotas_read = OwnerQuotas._read

    def read_together(self: OwnerQuotas, owner: str) -> Any:
        item = quotas_read(self, owner)
        if racing.is_set() and not getattr(first_read, "done", False):
            first_read.done = True
            barrier.wait(timeout=10)
        return item

    monkeypatch.setattr(OwnerQuotas, "_read", read_together)
    write_lock = threading.Lock()  # DynamoDB's per-item atomicity, which moto in-process lacks
    quotas_write = OwnerQuotas._write

    def write_in_turn(self: OwnerQuotas, *args: Any) -> bool:
        with write_lock:
            return quotas_write(self, *args)

    monkeypatch.setattr(OwnerQuotas, "_write", write_in_turn)
    racing.set()
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda cid: one(deps, cid, lecture_upload()), ["conn-a1", "conn-a2"]))
    racing.clear()
    assert sorted(r["type"] for r in replies) == ["error", "uploadUrl"], replies
    assert_refused(next(r for r in replies if r["type"] == "error"), "lectures", 2)
    lectures = [i for i in deps.store.lectures.scan(ConsistentRead=True)["Items"] if i["owner"] == "alice"]
    assert len(lectures) == 2
    assert len(OwnerQuotas(deps.store, deps.platform).ledger("alice").lectures) == 2


# --------------------------------------------------------------------------- TTLs and validation


def test_pending_lecture_expires_soon_and_a_validated_one_after_the_retention(
    deps: EdgeDeps, audio: dict[str, Path]
) -> None:
    data = audio["mp3"].read_bytes()
    lecture_id, key = upload(deps, data)
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None
    assert item["expiresAt"] == item["createdAt"] + deps.platform.storage.pending_upload_seconds
    assert validate(deps, key)["outcome"] == "ready"
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None
    assert item["expiresAt"] == item["createdAt"] + deps.platform.storage.retention_days * 86400
    ledger = OwnerQuotas(deps.store, deps.platform).ledger("alice")
    # No longer in progress; charged its real size until the lecture expires.
    assert ledger.uploads == {}
    assert ledger.lectures[lecture_id] == {"b": len(data), "e": item["expiresAt"]}


def test_a_rejected_lecture_gives_its_quota_back(deps: EdgeDeps) -> None:
    _, key = upload(deps, b"not audio at all" * 10)
    assert validate(deps, key)["outcome"] == "rejected"
    ledger = OwnerQuotas(deps.store, deps.platform).ledger("alice")
    assert ledger.lectures == {} and ledger.uploads == {}


def test_an_object_larger_than_declared_must_fit_the_bytes_quota(
    deps: EdgeDeps, audio: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = audio["mp3"].read_bytes()
    with_quotas(deps, monkeypatch, stored_bytes=len(data) - 1)
    assert handle(ws_event("$connect", "conn-v", identity="alice"), deps)["statusCode"] == 200
    up = one(deps, "conn-v", lecture_upload(10))
    key = up["key"]
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=data)
    result = validate(deps, key)
    assert result["outcome"] == "rejected" and "stored_bytes" in result["reason"], result
    assert OwnerQuotas(deps.store, deps.platform).ledger("alice").lectures == {}


# --------------------------------------------------------------------------- deleteLecture


def test_delete_lecture_removes_objects_items_sessions_and_gives_quota_back(
    deps: EdgeDeps, alice: str, bob: str, audio: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_quotas(deps, monkeypatch, lectures=1)
    lecture_id, key = upload(deps, audio["mp3"].read_bytes())
    assert validate(deps, key)["outcome"] == "ready"
    bucket = deps.resources.bucket
    transcript = f"transcripts/{lecture_id}.json"
    segments = [f"segments/{lecture_id}/0000.mp3", f"segments/{lecture_id}/manifest.json"]
    for extra in (transcript, *segments):
        deps.s3.put_object(Bucket=bucket, Key=extra, Body=b"x")
    other = "segments/lec_other/0000.mp3"
    deps.s3.put_object(Bucket=bucket, Key=other, Body=b"y")
    session = one(deps, alice, {"action": "startSession", "lectureId": lecture_id})
    assert session["type"] == "session"
    assert_refused(one(deps, alice, lecture_upload()), "lectures", 1)
    # The session's answer audio, and a question clip asked in it (issue 18: delete means gone).
    answers = [
        f"responses/{session['sessionId']}/r-1/0000.mp3",
        f"responses/{session['sessionId']}/r-1/0001.mp3",
    ]
    for extra in answers:
        deps.s3.put_object(Bucket=bucket, Key=extra, Body=b"a")
    clip = one(deps, alice, {**query_upload(), "sizeBytes": 10})
    deps.s3.put_object(Bucket=bucket, Key=clip["key"], Body=b"0123456789")
    asked = {"action": "query", "sessionId": session["sessionId"], "queryKey": clip["key"]}
    assert send(deps, alice, asked) == []  # handed to AgentCore
    others = [other, "responses/ses_other/r-1/0000.mp3"]
    deps.s3.put_object(Bucket=bucket, Key=others[1], Body=b"z")

    # Another identity's delete is not_found and changes nothing.
    before = everything(deps)
    refused = one(deps, bob, {"action": "deleteLecture", "lectureId": lecture_id, "requestId": "d-1"})
    assert refused["code"] == "not_found" and refused["requestId"] == "d-1"
    assert everything(deps) == before

    done = one(deps, alice, {"action": "deleteLecture", "lectureId": lecture_id})
    assert done == {"type": "lectureDeleted", "lectureId": lecture_id}
    keys_left = [o["Key"] for o in deps.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(keys_left) == sorted(others)
    assert deps.store.lectures.get_item(Key={"lectureId": lecture_id}).get("Item") is None
    assert deps.store.sessions.get_item(Key={"sessionId": session["sessionId"]}).get("Item") is None
    assert one(deps, alice, {"action": "getLecture", "lectureId": lecture_id})["code"] == "not_found"
    # Deleted twice: not_found. The quota is back.
    assert one(deps, alice, {"action": "deleteLecture", "lectureId": lecture_id})["code"] == "not_found"
    assert one(deps, alice, lecture_upload())["type"] == "uploadUrl"


# --------------------------------------------------------------------------- rates


def message(cid: str, body: dict[str, Any], ip: str) -> dict[str, Any]:
    event = ws_event("$default", cid, body=json.dumps(body))
    event["requestContext"]["identity"]["sourceIp"] = ip
    return event


def test_a_flooding_connection_is_rate_limited_alone_and_stays_open(
    deps: EdgeDeps, alice: str, bob: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates = deps.platform.rates.model_copy(update={"connection_messages": 5, "source_messages": 8})
    monkeypatch.setattr(deps, "platform", deps.platform.model_copy(update={"rates": rates}))
    now = (deps.store.now() // rates.window_seconds + 1) * rates.window_seconds
    monkeypatch.setattr(deps.store, "_clock", lambda: now)
    probe = {"action": "getLecture", "lectureId": "lec_none", "requestId": "f"}
    codes = []
    for _ in range(12):
        handle(message(alice, probe, "198.51.100.7"), deps)
        codes.append(pushed(alice)[-1]["code"])
    assert codes == ["not_found"] * 5 + ["rate_limited"] * 7
    limited = pushed(alice)[-1]
    assert "5 messages" in limited["message"] and limited["requestId"] == "f"
    # Another student behind the same address is not throttled by the flood.
    for _ in range(3):
        handle(message(bob, probe, "198.51.100.7"), deps)
        assert pushed(bob)[-1]["code"] == "not_found"
    # The address's own limit (8 here): the flooder used 5 of it, bob 3.
    handle(message("conn-bob", probe, "198.51.100.7"), deps)
    assert pushed(bob)[-1]["code"] == "rate_limited" and "address" in pushed(bob)[-1]["message"]
    # Next window: the flooder's connection is still open and served.
    monkeypatch.setattr(deps.store, "_clock", lambda: now + rates.window_seconds)
    handle(message(alice, probe, "198.51.100.7"), deps)
    assert pushed(alice)[-1]["code"] == "not_found"
    assert deps.store.get_connection(alice) is not None


def test_a_query_clip_used_by_a_query_gives_its_upload_slot_back(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    up = one(deps, alice, query_upload())
    assert up["type"] == "uploadUrl"
    quotas = OwnerQuotas(deps.store, deps.platform)
    assert list(quotas.ledger("alice").uploads) == [up["uploadId"]]
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=up["key"], Body=b"ID3" + bytes(100))
    assert send(deps, alice, {"action": "query", "sessionId": session_id, "queryKey": up["key"]}) == []
    assert len(agentcore.requests) == 1
    assert quotas.ledger("alice").uploads == {}
