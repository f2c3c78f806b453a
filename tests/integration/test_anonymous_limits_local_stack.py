"""An anonymous script against the local stack with platform.yaml's own limits: it mints
identities (the local stack's `identity` parameter stands in for Cognito's unauthenticated
identities) and loops uploads, questions and messages. Each identity stops at its quotas
(`quota_exceeded` naming the quota), a flood is `rate_limited` on its connection only, another
student on the same address is served throughout, and nothing else changes: no object is stored,
the other student's items are untouched, and once refused a request writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from synapscribe import audiogen
from synapscribe.local.process import LocalStackProcess
from synapscribe.platform import load_platform
from synapscribe.smoke.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

IDENTITIES = 4


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess() as running:
        yield running


def state(stack: LocalStackProcess) -> dict[str, Any]:
    """Every item (the rate windows and day counters aside: they count every message) and every object."""
    dynamodb, s3 = stack.aws_client("dynamodb"), stack.aws_client("s3")
    tables = {}
    for name in sorted(dynamodb.list_tables()["TableNames"]):
        items = dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]
        # The service's day counters and connection windows count every attempt (the ceilings'
        # own test, test_attack_local_stack.py, checks them against what the ceilings allow).
        counters = ("conn#", "ip#", "connect#", "day#", "gpu#")
        kept = [i for i in items if not i.get("limitId", {}).get("S", "").startswith(counters)]
        tables[name] = sorted(json.dumps(i, sort_keys=True) for i in kept)
    objects = s3.list_objects_v2(Bucket=stack.info["bucket"]).get("Contents", [])
    return {"tables": tables, "objects": sorted((o["Key"], o["ETag"]) for o in objects)}


def upload_request(size: int = 100_000) -> dict[str, Any]:
    # No requestId: `uploadUrl` carries none, so the reply is the next uploadUrl or error.
    return {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "x.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": size,
    }


async def ready_session(client: StackClient) -> str:
    data = audiogen.cached_lecture(0.25).read_bytes()
    up = await client.request(upload_request(len(data)), "uploadUrl")
    assert up.message is not None and up.data is not None and up.data["type"] == "uploadUrl", up.raw
    response = await client.upload(up.message, data, "l.mp3", "audio/mpeg")  # type: ignore[arg-type]
    assert response.status_code in (200, 201, 204), response.text
    ready = await client.wait_type(
        "lecture", where=lambda r: bool(r.data and r.data.get("status") in ("ready", "rejected")), within=60
    )
    assert ready.data is not None and ready.data["status"] == "ready", ready.raw
    session = await client.request({"action": "startSession", "lectureId": up.data["uploadId"]}, "session")
    assert session.data is not None and session.data["type"] == "session", session.raw
    return str(session.data["sessionId"])


async def mint_identities_and_upload(stack: LocalStackProcess, uploads_in_progress: int) -> int:
    """Identities minted in a loop, each asking for uploads until refused (uploads in progress is
    the first quota met); none of them uploads anything. Returns the uploads granted."""
    granted = 0
    for n in range(IDENTITIES):
        anon = await StackClient.connect(stack.url, identity=f"anon-script-{n}", label=f"anon{n}")
        try:
            for _ in range(uploads_in_progress + 3):
                reply = await anon.request(upload_request(), "uploadUrl")
                data = reply.data or {}
                if data.get("type") == "uploadUrl":
                    granted += 1
                    continue
                assert data.get("code") == "quota_exceeded", reply.raw
                assert "uploads_in_progress" in data["message"], data
                assert str(uploads_in_progress) in data["message"], data
                break
            else:
                pytest.fail(f"identity {n} was never refused an upload")
            before_refusal = state(stack)
            again = await anon.request(upload_request(), "uploadUrl")
            assert again.data is not None and again.data.get("code") == "quota_exceeded", again.raw
            assert state(stack) == before_refusal  # a refused request writes nothing
        finally:
            await anon.close()
    return granted


async def ask_until_refused(script: StackClient, session_id: str, per_minute: int) -> dict[str, int]:
    """Questions in a loop until a quota refuses one. Twice the per-minute quota and more: however
    the loop falls across minutes, one minute goes over."""
    refusals: dict[str, int] = {}
    for i in range(2 * per_minute + 2):
        result = await script.query(session_id, text=f"question {i}?", voice=False, within=60)
        final = result.final
        assert final is not None and final.data is not None, f"question {i}: no final message"
        if final.data["type"] != "error":
            continue
        code = final.data["code"]
        assert code in ("quota_exceeded", "rate_limited"), final.raw
        refusals[code] = refusals.get(code, 0) + 1
        if code == "quota_exceeded":
            message = final.data["message"]
            assert "questions_per_minute" in message or "jobs_in_flight" in message, message
            break
    return refusals


async def flood(script: StackClient, messages: int) -> list[str | None]:
    for _ in range(messages):
        await script.send({"action": "getLecture", "lectureId": "lec_flood"})
    codes = []
    for _ in range(messages):
        reply = await script.wait_for(lambda r: r.type == "error", 20, "an answer to the flood")
        codes.append((reply.data or {}).get("code"))
    return codes


def assert_nothing_else_changed(baseline: dict[str, Any], after: dict[str, Any]) -> None:
    """No object was stored by the script; the items that are new or changed are the script's own (its granted
    uploads' pending items, its ledgers) or the student's session and ledger after its answer."""
    # AgentCore cuts a lecture into its audio items when it first answers on it: the two ready
    # lectures' segments are the only objects that may appear.
    lectures = {
        key.rsplit("/", 1)[-1].split(".")[0] for key, _ in baseline["objects"] if key.startswith("lectures/")
    }
    new_objects = set(after["objects"]) - set(baseline["objects"])
    assert all(key.split("/")[0] == "segments" and key.split("/")[1] in lectures for key, _ in new_objects), (
        new_objects
    )
    assert set(baseline["objects"]) <= set(after["objects"])
    for table, items in after["tables"].items():
        before = set(baseline["tables"][table])
        for item in set(items) ^ before:  # new, changed (both versions) or gone
            assert may_change(item), (table, item[:300])


def may_change(item: str) -> bool:
    """The script's own items, or the student's session, connection and ledger after its answer."""
    if "anon-script-" in item or "script-asker" in item:
        return True
    return "student" in item and any(mark in item for mark in ('"history"', "owner#student", '"finals"'))


async def test_an_anonymous_script_hits_its_limits_and_changes_nothing_else(stack: LocalStackProcess) -> None:
    platform = load_platform()
    quotas, rates = platform.quotas, platform.rates
    student = await StackClient.connect(stack.url, identity="student", label="student")
    script = await StackClient.connect(stack.url, identity="script-asker", label="asker")
    try:
        student_session = await ready_session(student)
        asker_session = await ready_session(script)
        baseline = state(stack)

        granted = await mint_identities_and_upload(stack, quotas.uploads_in_progress)
        assert granted == IDENTITIES * quotas.uploads_in_progress

        refusals = await ask_until_refused(script, asker_session, quotas.questions_per_minute)
        assert refusals.get("quota_exceeded", 0) == 1, refusals

        # A flood on one connection: rate_limited there (at most two windows' worth got through,
        # however the flood fell across windows); the connection stays open.
        messages = 3 * rates.connection_messages
        codes = await flood(script, messages)
        assert set(codes) <= {"not_found", "rate_limited"}, set(codes)
        assert codes.count("rate_limited") >= messages - 2 * rates.connection_messages, codes
        assert script.is_open, script.closed_reason
        # The student, on the same address, is served.
        served = await student.query(student_session, text="What is photosynthesis?", voice=False, within=60)
        assert served.answer is not None, [m.raw for m in served.messages]

        assert_nothing_else_changed(baseline, state(stack))
    finally:
        await script.close()
        await student.close()
