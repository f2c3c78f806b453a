"""Over a thousand malformed and hostile messages over one connection to the local stack: each
gets the right error, the connection lives on, and DynamoDB and S3 are unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synapscribe.contract import ACTIONS
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import StackClient
from websockets.sync.client import connect as ws_connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MIN_MESSAGES = 1000


@dataclass(frozen=True)
class Case:
    frame: str | bytes
    code: str
    request_id: str | None = None
    label: str = ""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    # A thousand messages on one connection test the contract, not the message rate (the unit tests
    # test_edge_limits.py and test_anonymous_limits_local_stack.py test the rates): raised here.
    env = {"SYNAPSCRIBE_RATE_CONNECTION_MESSAGES": "1000000", "SYNAPSCRIBE_RATE_SOURCE_MESSAGES": "1000000"}
    with LocalStackProcess(env=env) as running:
        yield running


def snapshot(stack: LocalStackProcess) -> dict[str, Any]:
    """Every item of every table and every object's key, size and ETag."""
    dynamodb, s3 = stack.aws_client("dynamodb"), stack.aws_client("s3")
    tables: dict[str, Any] = {}
    for name in sorted(dynamodb.list_tables()["TableNames"]):
        items = dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]
        # The message-rate windows count every message by design (a quota ledger must not change).
        kept = [i for i in items if not i.get("limitId", {}).get("S", "").startswith(("conn#", "ip#"))]
        tables[name] = sorted(json.dumps(item, sort_keys=True) for item in kept)
    objects = s3.list_objects_v2(Bucket=stack.info["bucket"]).get("Contents", [])
    return {"tables": tables, "objects": sorted((o["Key"], o["Size"], o["ETag"]) for o in objects)}


def _rid(rng: random.Random) -> str:
    return "fz-" + "".join(rng.choices(string.ascii_letters + string.digits, k=10))


def _junk_text(rng: random.Random, n: int) -> str:
    alphabet = string.printable + "ÄßЖ中😀\u200b\x00\x7f"
    return "".join(rng.choices(alphabet, k=n))


#: Values of the wrong type or shape for a message's fields.
WRONG_VALUES: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", [], {}, ["x"], {"a": 1}, "x" * 300, "💥")
#: Malformed ids: bad_request wherever an id goes.
BAD_IDS: tuple[Any, ...] = (
    None,
    5,
    "",
    "x" * 65,
    "../etc/passwd",
    "lec 1",
    "lec_1;drop",
    "ü",
    ["a"],
    {"S": "x"},
)
BASE_UPLOAD = {"action": "createUpload", "kind": "lecture", "filename": "a.mp3", "contentType": "audio/mpeg"}
UNKNOWN_LECTURE = "lec_" + "0" * 32


class _HostileCases:
    """hostile_cases' families of messages, one method each; they draw from one seeded generator
    in a fixed order, so the cases are the same on every run."""

    def __init__(self, victim: dict[str, str], seed: int) -> None:
        self.rng = random.Random(seed)
        self.limits = load_platform().limits
        self.lecture_id, self.session_id, self.victim_key = (
            victim["lectureId"],
            victim["sessionId"],
            victim["key"],
        )
        self.cases: list[Case] = []

    def all(self) -> list[Case]:
        for family in (
            self.not_messages,
            self.unknown_actions,
            self.bad_uploads,
            self.bad_and_foreign_ids,
            self.bad_queries,
            self.oversized,
            self.top_up,
        ):
            family()
        self.rng.shuffle(self.cases)
        return self.cases

    def add(self, obj: Any, code: str, rid: str | None = None, label: str = "") -> None:
        if isinstance(obj, dict) and rid is not None:
            obj = {**obj, "requestId": rid}
        frame = obj if isinstance(obj, str | bytes) else json.dumps(obj)
        self.cases.append(Case(frame, code, rid, label))

    def not_messages(self) -> None:
        """Not JSON, and JSON that is not an object."""
        rng, add = self.rng, self.add
        for _ in range(4):
            add(_junk_text(rng, rng.randint(1, 200)).replace("{", "(") + "{", "bad_request", label="garbage")
            add('{"action": "getLecture", "lectureId": ', "bad_request", label="truncated")
            add("[" * 5000 + "]" * 5000, "bad_request", label="deep nesting")
            add(
                '{"action":"getLecture","lectureId":"' + UNKNOWN_LECTURE + '"',
                "bad_request",
                label="unclosed",
            )
            for value in [1, "str", None, [1, 2], True, 3.25]:
                add(json.dumps(value), "bad_request", label="not an object")
            add(b"\x00\xff\xfe binary" + rng.randbytes(rng.randint(0, 64)), "bad_request", label="binary")
            add(rng.randbytes(rng.randint(1, 2000)), "bad_request", label="binary")
            add({}, "bad_request", label="no action")

    def unknown_actions(self) -> None:
        rng, add = self.rng, self.add
        for value in WRONG_VALUES:
            if value is not None and not isinstance(value, str):
                add({"action": value}, "bad_request", _rid(rng), "action not a string")
        add({"action": None}, "bad_request", label="action null")
        for name in [
            "createupload",
            "CreateUpload",
            "$connect",
            "$disconnect",
            "$default",
            "query ",
            " query",
            "deletelecture",
            "listLectures",
            "__proto__",
            "constructor",
            "getLecture\x00",
            "x" * 5000,
        ] + [_junk_text(rng, rng.randint(1, 40)) for _ in range(40)]:
            if name in ACTIONS:
                continue
            add({"action": name, "lectureId": self.lecture_id}, "unknown_action", _rid(rng), "unknown action")

    def bad_uploads(self) -> None:
        add, limits = self.add, self.limits
        for field in ("kind", "filename", "contentType", "sizeBytes"):
            for value in WRONG_VALUES:
                if field == "filename" and isinstance(value, str) and 1 <= len(value) <= 255:
                    continue
                if field == "contentType" and isinstance(value, str) and 1 <= len(value) <= 100:
                    continue
                msg = {**BASE_UPLOAD, "sizeBytes": 1000, field: value}
                add(msg, "bad_request", label=f"createUpload {field}={str(value)[:20]!r}")
            add({k: v for k, v in {**BASE_UPLOAD, "sizeBytes": 1000}.items() if k != field}, "bad_request")
        for size in ["1000", 10.0, True, 0, -5]:
            add({**BASE_UPLOAD, "sizeBytes": size}, "bad_request", label="sizeBytes type")
        # Media types are case-insensitive and their parameters dropped, and video/webm and
        # video/mp4 are accepted (contract.CreateUpload): "AUDIO/MPEG; x=1" is audio/mpeg.
        for ctype in [
            "text/plain",
            "application/pdf",
            "video/x-msvideo",
            "audio/mpeg3",
            "text/plain; charset=utf-8",
            "image/png",
        ]:
            add(
                {**BASE_UPLOAD, "sizeBytes": 1000, "contentType": ctype},
                "unsupported_media",
                label="content type",
            )
        add({**BASE_UPLOAD, "sizeBytes": limits.lecture_max_bytes + 1}, "too_large", label="lecture too big")
        add(
            {**BASE_UPLOAD, "kind": "query", "sizeBytes": limits.query_max_bytes + 1},
            "too_large",
            label="query too big",
        )
        add({**BASE_UPLOAD, "sizeBytes": 10**30}, "too_large", label="absurd size")

    def bad_and_foreign_ids(self) -> None:
        """Malformed ids are bad_request; well-formed unknown or foreign ones are not_found."""
        add, lecture_id, session_id = self.add, self.lecture_id, self.session_id
        for action in ("getLecture", "startSession", "deleteLecture"):
            for value in BAD_IDS:
                add({"action": action, "lectureId": value}, "bad_request", label=f"{action} bad id")
            for lid in [lecture_id, UNKNOWN_LECTURE, "ses_" + session_id[4:], session_id, "a", "-" * 64]:
                add({"action": action, "lectureId": lid}, "not_found", label=f"{action} foreign/unknown")
            add(
                {"action": action, "lectureId": lecture_id, "owner": "victim", "identity": "victim"},
                "not_found",
            )
        for value in BAD_IDS:
            add({"action": "endSession", "sessionId": value}, "bad_request", label="endSession bad id")
        for sid in [session_id, "ses_" + "1" * 32, lecture_id]:
            add({"action": "endSession", "sessionId": sid}, "not_found", label="endSession foreign/unknown")

    def bad_queries(self) -> None:
        rng, add, session_id, victim_key = self.rng, self.add, self.session_id, self.victim_key
        clip = base64.b64encode(b"ID3" + bytes(2000)).decode()
        big_clip = base64.b64encode(bytes(self.limits.inline_audio_max_bytes + 1)).decode()
        for _ in range(3):
            rid = _rid(rng)
            add(
                {"action": "query", "sessionId": session_id, "text": "what?"},
                "not_found",
                rid,
                "foreign session",
            )
            add(
                {"action": "query", "sessionId": session_id, "audio": clip},
                "not_found",
                _rid(rng),
                "foreign session",
            )
            add({"action": "query", "sessionId": session_id, "queryKey": victim_key}, "not_found", _rid(rng))
            add(
                {"action": "query", "sessionId": "ses_" + "2" * 32, "text": "hi"},
                "not_found",
                _rid(rng),
                "unknown",
            )
            add({"action": "query", "sessionId": session_id}, "bad_request", _rid(rng), "no input")
            add(
                {"action": "query", "sessionId": session_id, "text": "a", "audio": clip},
                "bad_request",
                _rid(rng),
            )
            add(
                {"action": "query", "sessionId": session_id, "text": "a", "queryKey": victim_key},
                "bad_request",
                _rid(rng),
                "two inputs",
            )
            add(
                {"action": "query", "sessionId": session_id, "text": "a", "voice": "yes"},
                "bad_request",
                _rid(rng),
            )
            add(
                {"action": "query", "sessionId": session_id, "audio": "not base64!!"},
                "bad_request",
                _rid(rng),
            )
            add(
                {"action": "query", "sessionId": session_id, "audio": big_clip},
                "too_large",
                _rid(rng),
                "big clip",
            )
            add(
                {"action": "query", "sessionId": session_id, "text": "x" * 4001},
                "bad_request",
                _rid(rng),
                "long text",
            )
            add(
                {"action": "query", "sessionId": session_id, "text": ""},
                "bad_request",
                _rid(rng),
                "empty text",
            )
        for value in WRONG_VALUES:
            if isinstance(value, str) and value:
                continue
            add(
                {"action": "query", "sessionId": session_id, "text": value},
                "bad_request",
                _rid(rng),
                "text type",
            )

    def oversized(self) -> None:
        """Messages over the size limit, as text: the gateway answers too_large."""
        for size in [self.limits.message_max_bytes + 1, 200_000, 1_000_000, 4_000_000]:
            padding = "y" * size
            self.add(
                json.dumps({"action": "getLecture", "lectureId": self.lecture_id, "pad": padding}),
                "too_large",
                label="huge",
            )

    def top_up(self) -> None:
        """Random mixtures until there are enough."""
        rng, lecture_id, session_id = self.rng, self.lecture_id, self.session_id
        makers = [
            lambda: Case(
                json.dumps({"action": "getLecture", "lectureId": rng.choice([lecture_id, UNKNOWN_LECTURE])}),
                "not_found",
            ),
            lambda: Case(
                json.dumps({"action": "startSession", "lectureId": lecture_id, "x": _junk_text(rng, 50)}),
                "not_found",
            ),
            lambda: Case(
                _junk_text(rng, rng.randint(1, 3000)).replace("{", "<").replace("[", "<"), "bad_request"
            ),
            lambda: Case(rng.randbytes(rng.randint(1, 500)), "bad_request"),
            lambda: Case(
                json.dumps(
                    {"action": "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 30))) + "_"}
                ),
                "unknown_action",
            ),
            lambda: Case(
                json.dumps({**BASE_UPLOAD, "sizeBytes": rng.choice(["1", -1, 0, 2.5, None])}), "bad_request"
            ),
            lambda: Case(json.dumps({"action": "endSession", "sessionId": session_id}), "not_found"),
        ]
        while len(self.cases) < MIN_MESSAGES + 50:
            case = rng.choice(makers)()
            rid = _rid(rng)
            if isinstance(case.frame, str) and case.frame.startswith("{") and rng.random() < 0.5:
                # Carry a requestId; the error must echo it.
                obj = json.loads(case.frame)
                obj["requestId"] = rid
                case = Case(json.dumps(obj), case.code, rid, "random")
            self.cases.append(case)


def hostile_cases(victim: dict[str, str], seed: int = 20261125) -> list[Case]:
    """Reproducible hostile messages, each with the error code the contract requires."""
    return _HostileCases(victim, seed).all()


async def _make_victim(url: str) -> tuple[StackClient, dict[str, str]]:
    """Another identity with a ready lecture, a live session and a query upload."""
    victim = await StackClient.connect(url, identity="victim-identity", label="victim")
    lecture = audiogen.cached_lecture(0.25)
    data = lecture.read_bytes()
    up = await victim.request(
        {
            "action": "createUpload",
            "kind": "lecture",
            "filename": "v.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": len(data),
        },
        "uploadUrl",
    )
    assert up.data is not None and up.message is not None, up.raw
    response = await victim.upload(up.message, data, "v.mp3", "audio/mpeg")  # type: ignore[arg-type]
    assert response.status_code in (200, 201, 204), response.text
    lecture_id = up.data["uploadId"]
    ready = await victim.wait_type(
        "lecture", where=lambda r: bool(r.data and r.data.get("status") in ("ready", "rejected")), within=60
    )
    assert ready.data is not None and ready.data["status"] == "ready", ready.raw
    session = await victim.request({"action": "startSession", "lectureId": lecture_id}, "session")
    assert session.data is not None and session.data["type"] == "session", session.raw
    q = await victim.request(
        {
            "action": "createUpload",
            "kind": "query",
            "filename": "q.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 100,
        },
        "uploadUrl",
    )
    assert q.data is not None and q.data["type"] == "uploadUrl", q.raw
    return victim, {"lectureId": lecture_id, "sessionId": session.data["sessionId"], "key": q.data["key"]}


async def test_hostile_messages_change_nothing(stack: LocalStackProcess) -> None:
    victim, ids = await _make_victim(stack.url)
    cases = hostile_cases(ids)
    assert len(cases) >= MIN_MESSAGES
    fuzzer = await StackClient.connect(stack.url, identity="fuzzer-identity", label="fuzzer")
    try:
        before = snapshot(stack)
        # The snapshot holds what the hostile messages aim at: the victim's lecture and session.
        stored = json.dumps(before)
        assert ids["lectureId"] in stored and ids["sessionId"] in stored
        started = time.monotonic()
        wrong: list[str] = []
        for case in cases:
            await fuzzer.send(case.frame)
            reply = await fuzzer.wait_for(
                lambda r: True, 10, f"an answer to {case.label or case.frame[:60]!r}"
            )
            data = reply.data or {}
            shown = case.frame[:80] if isinstance(case.frame, str) else "<binary>"
            if reply.problem or data.get("type") != "error" or data.get("code") != case.code:
                wrong.append(f"{shown!r} ({case.label}): expected {case.code}, got {str(reply.raw)[:200]}")
            elif case.request_id is not None and data.get("requestId") != case.request_id:
                wrong.append(f"{shown!r}: requestId {case.request_id} not echoed: {str(reply.raw)[:200]}")
        elapsed = time.monotonic() - started
        assert not wrong, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong[:30])
        assert fuzzer.is_open, fuzzer.closed_reason
        # Nothing else arrived (each message got exactly one answer).
        await asyncio.sleep(0.5)
        assert not fuzzer.unconsumed(), [r.raw for r in fuzzer.unconsumed()][:5]
        # The connection still works for a legitimate request.
        ok = await fuzzer.request({"action": "getLecture", "lectureId": ids["lectureId"]}, "lecture")
        assert ok.data is not None and ok.data["code"] == "not_found"
        after = snapshot(stack)
        assert after == before
        print(f"fuzz: {len(cases)} hostile messages in {elapsed:.1f} s ({len(cases) / elapsed:.0f}/s)")
    finally:
        await fuzzer.close()
        await victim.close()


# --------------------------------------------------------------------------- hypothesis

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_not_an_id = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=2),
    st.text(min_size=65, max_size=80),
    st.text(max_size=20).filter(lambda s: re.fullmatch(r"[A-Za-z0-9_-]{1,64}", s) is None),
)


_hostile = st.one_of(
    # Any JSON that is not an object.
    st.one_of(_json_scalars, st.lists(_json, max_size=4)).map(lambda v: (json.dumps(v), "bad_request")),
    # Objects whose action is not one of the contract's.
    st.tuples(
        st.text(min_size=1, max_size=60).filter(lambda a: a not in ACTIONS),
        st.dictionaries(st.text(max_size=8), _json, max_size=3),
    ).map(lambda t: (json.dumps({**t[1], "action": t[0]}), "unknown_action")),
    # Real actions with an id that cannot be one.
    st.tuples(st.sampled_from(["getLecture", "startSession"]), _not_an_id).map(
        lambda t: (json.dumps({"action": t[0], "lectureId": t[1]}), "bad_request")
    ),
    st.tuples(st.sampled_from(["endSession", "query"]), _not_an_id).map(
        lambda t: (json.dumps({"action": t[0], "sessionId": t[1], "text": "hi"}), "bad_request")
    ),
    # Well-formed ids that nobody owns.
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True).map(
        lambda i: (json.dumps({"action": "getLecture", "lectureId": i}), "not_found")
    ),
    # Binary frames.
    st.binary(min_size=1, max_size=300).map(lambda b: (b, "bad_request")),
)


def test_hypothesis_hostile_messages(stack: LocalStackProcess) -> None:
    with ws_connect(stack.url + "/?identity=hypothesis-fuzzer", max_size=None) as ws:
        before = snapshot(stack)

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_hostile)
        def check(case: tuple[str | bytes, str]) -> None:
            frame, code = case
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=10))
            assert reply.get("type") == "error" and reply.get("code") == code, (frame, reply)

        check()
        ws.send(json.dumps({"action": "getLecture", "lectureId": "still-alive"}))
        assert json.loads(ws.recv(timeout=10))["code"] == "not_found"
        assert snapshot(stack) == before
