"""An anonymous script against the local stack with platform.yaml's own limits: it mints
identities (the local stack's `identity` parameter stands in for Cognito's unauthenticated
identities) and loops uploads, questions and messages. Each identity stops at its quotas
(`quota_exceeded` naming the quota), a flood is `rate_limited` on its connection only, another
student on the same address is served throughout, and nothing else changes: no object is stored,
the other student's items are untouched, and once refused a request writes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from synapscribe.contract import UploadUrl
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

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


# --------------------------------------------------------------------------- the service's ceilings
# Issue 18: small ceilings on their own stack; 200 identities minted on one address and on many
# (the local gateway takes the address from SOURCE_HEADER in test mode), reused and rejected
# uploads, a `$default` flood, a question flood and a warm start. Afterwards what is stored and
# counted is what the ceilings allow, every refusal had its code, and the honest student on
# another address was served.

MINTED = 200
ONE_ADDRESS = "203.0.113.66"
HONEST, ASKER = "192.0.2.10", "198.51.100.77"
CEILINGS = {
    "daily_upload_bytes": 50_000_000,
    "daily_lectures": 6,
    "daily_questions": 8,
    "daily_gpu_host_hours": 24,
    "nightly_warm_starts": 1,
}
PER_ADDRESS = {"daily_uploads": 3, "daily_upload_bytes": 300_000, "connections_per_minute": 50}
ATTACK_UPLOAD = 100_000


@pytest.fixture(scope="module")
def ceiling_stack() -> Iterator[LocalStackProcess]:
    from synapscribe_local.gateway import TRUST_SOURCE_HEADER_ENV

    env = {
        "SYNAPSCRIBE_CEILINGS": json.dumps(CEILINGS),
        "SYNAPSCRIBE_PER_ADDRESS": json.dumps(PER_ADDRESS),
        TRUST_SOURCE_HEADER_ENV: "1",
        "SYNAPSCRIBE_INTAKE_CACHE_SECONDS": "0.5",
    }
    with LocalStackProcess(env=env, fleet_at_zero=True, sweep_interval=1.0) as running:
        yield running


async def connect_from(stack: LocalStackProcess, identity: str, address: str) -> StackClient | None:
    """A connection from `address`; None when the stack refused it over the address's allowance."""
    from synapscribe_local.gateway import SOURCE_HEADER
    from synapscribe_ops.smoke.client import ClientError

    try:
        return await StackClient.connect(stack.url, identity=identity, headers={SOURCE_HEADER: address})
    except ClientError as exc:
        assert "429" in str(exc), exc
        return None


def table(stack: LocalStackProcess, kind: str) -> str:
    (name,) = [t for t in stack.aws_client("dynamodb").list_tables()["TableNames"] if t.endswith(f"-{kind}")]
    return str(name)


def counter(stack: LocalStackProcess, name: str) -> int:
    from datetime import UTC, datetime

    offset = 12 * 3600 if name == "warm_starts" else 0
    day = datetime.fromtimestamp(time.time() - offset, UTC).strftime("%Y-%m-%d")
    item = (
        stack.aws_client("dynamodb")
        .get_item(
            TableName=table(stack, "limits"), Key={"limitId": {"S": f"day#{day}#{name}"}}, ConsistentRead=True
        )
        .get("Item")
    )
    return int(item["n"]["N"]) if item else 0


async def test_strangers_stop_at_the_services_ceilings(ceiling_stack: LocalStackProcess) -> None:
    stack, codes = ceiling_stack, Counter()
    honest = await connect_from(stack, "honest-student", HONEST)
    asker = await connect_from(stack, "script-asker", ASKER)
    assert honest is not None and asker is not None
    try:
        honest_session = await ready_session(honest)
        first = await honest.query(honest_session, text="What is photosynthesis?", voice=False, within=240)
        assert first.answer is not None, [m.raw for m in first.messages]  # started the fleet from zero
        assert counter(stack, "warm_starts") == 1 <= CEILINGS["nightly_warm_starts"]
        asker_session = await ready_session(asker)

        # 200 identities from one address: 50 connections a minute, 3 uploads a day.
        granted: list[dict[str, Any]] = []
        one = [await connect_from(stack, f"mint-one-{n}", ONE_ADDRESS) for n in range(MINTED)]
        live = [c for c in one if c is not None]
        codes["connect 429"] = MINTED - len(live)
        assert len(live) == PER_ADDRESS["connections_per_minute"]
        for client in live[:10]:
            reply = await client.request(upload_request(ATTACK_UPLOAD), "uploadUrl")
            data = reply.data or {}
            if data.get("type") == "uploadUrl":
                granted.append(data)
            else:
                assert data.get("code") == "service_limit" and "this address" in data["message"], data
                codes["service_limit"] += 1
        assert len(granted) == PER_ADDRESS["daily_uploads"]

        # One granted policy POSTed again and again with junk, and one POST over its declared size.
        url = UploadUrl.model_validate(granted[0])
        for _ in range(3):
            response = await live[0].upload(
                url, b"\x00not audio" * (ATTACK_UPLOAD // 10), "x.mp3", "audio/mpeg"
            )
            assert response.status_code == 204, response.text
            await wait_gone(stack, url.key)
        too_big = await live[1].upload(
            UploadUrl.model_validate(granted[1]), bytes(ATTACK_UPLOAD + 1), "x.mp3", "audio/mpeg"
        )
        assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
        for client in live:
            await client.close()

        # 200 identities from as many addresses: the service's lectures a day run out.
        many_granted = 0
        for n in range(MINTED):
            client = await connect_from(stack, f"mint-many-{n}", f"198.18.{n // 250}.{n % 250 + 1}")
            assert client is not None
            reply = await client.request(upload_request(50_000), "uploadUrl")
            data = reply.data or {}
            if data.get("type") == "uploadUrl":
                many_granted += 1
            else:
                assert data.get("code") == "service_limit" and "try again tomorrow" in data["message"], data
                codes["service_limit"] += 1
            await client.close()
        assert 2 + len(granted) + many_granted == CEILINGS["daily_lectures"] == counter(stack, "lectures")

        # `$default` flooded with what route selection cannot read: each answered, nothing acted on.
        flood_frames = [
            "{not json",
            json.dumps({**upload_request(), "pad": float("nan")}),
            '{"action":"getLecture","action":"x"}',
        ]
        for frame in flood_frames * 10:
            await asker.send(frame)
        for _ in range(len(flood_frames) * 10):
            reply = await asker.wait_for(lambda r: r.type == "error", 20, "an answer to the flood")
            code = (reply.data or {}).get("code")
            assert code in ("bad_request", "rate_limited"), reply.raw
            codes[str(code)] += 1
        # The honest student, on another address, is served after all this.
        served = await honest.query(honest_session, text="And respiration?", voice=False, within=60)
        assert served.answer is not None, [m.raw for m in served.messages]

        # A question flood runs into the day's questions (on a fresh message-rate window: the
        # `$default` flood above took most of this connection's).
        await asyncio.sleep(load_platform().rates.window_seconds + 1)
        answered = 2
        for i in range(CEILINGS["daily_questions"] + 4):
            result = await asker.query(asker_session, text=f"question {i}?", voice=False, within=60)
            final = result.final
            assert final is not None and final.data is not None
            if final.data["type"] == "answer":
                answered += 1
            else:
                assert final.data["code"] == "service_limit", final.raw
                codes["service_limit"] += 1
        assert answered == CEILINGS["daily_questions"] == counter(stack, "questions")

        # What is stored and counted is what the ceilings allow.
        assert counter(stack, f"addr#{ONE_ADDRESS}#uploads") == PER_ADDRESS["daily_uploads"]
        assert (
            counter(stack, f"addr#{ONE_ADDRESS}#upload_bytes")
            == 3 * ATTACK_UPLOAD
            <= PER_ADDRESS["daily_upload_bytes"]
        )
        assert counter(stack, "upload_bytes") <= CEILINGS["daily_upload_bytes"]
        objects = stack.aws_client("s3").list_objects_v2(Bucket=stack.info["bucket"]).get("Contents", [])
        lectures = [o for o in objects if o["Key"].startswith("lectures/")]
        assert len(lectures) == 2 and all("mint-" not in o["Key"] for o in lectures), lectures
        items = stack.aws_client("dynamodb").scan(TableName=table(stack, "lectures"))["Items"]
        assert len(items) == CEILINGS["daily_lectures"]
        await intake_closes_and_opens(stack, honest)
        print(f"refusals by code: {dict(codes)}")
        assert codes["connect 429"] == MINTED - PER_ADDRESS["connections_per_minute"]
        assert codes["bad_request"] + codes["rate_limited"] == len(flood_frames) * 10
    finally:
        await honest.close()
        await asker.close()


async def intake_closes_and_opens(stack: LocalStackProcess, client: StackClient) -> None:
    """The operator's switch (the local stack's parameter in moto's SSM): closed, an upload is
    refused with its code and nothing is stored; opened, the refusal is the day's ceiling again."""
    from synapscribe_local.stack import LOCAL_INTAKE_PARAMETER

    ssm = stack.aws_client("ssm")
    before = counter(stack, "lectures")
    for state, says in (("closed", "not taking new uploads"), ("open", "today's limit")):
        value = json.dumps({"uploads": state, "questions": "open"})
        ssm.put_parameter(Name=LOCAL_INTAKE_PARAMETER, Type="String", Value=value, Overwrite=True)
        await asyncio.sleep(1.0)  # past the handler's cache (SYNAPSCRIBE_INTAKE_CACHE_SECONDS)
        reply = await client.request(upload_request(), "uploadUrl")
        assert reply.data is not None and reply.data.get("code") == "service_limit", reply.raw
        assert says in reply.data["message"], reply.raw
    assert counter(stack, "lectures") == before


async def wait_gone(stack: LocalStackProcess, key: str, within: float = 30.0) -> None:
    """The validator deletes a rejected upload (and a rejected lecture's file POSTed again)."""
    s3 = stack.aws_client("s3")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not s3.list_objects_v2(Bucket=stack.info["bucket"], Prefix=key).get("Contents"):
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{key} is still stored {within:g} s after its POST")
