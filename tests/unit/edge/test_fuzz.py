"""A thousand malformed or hostile messages straight at the WebSocket handler (on moto): each gets
the right error, the connection lives on, and DynamoDB, S3 and AgentCore see nothing."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.websocket_handler import handle

from .edge_support import AgentCoreRecorder, pushed, table_snapshot, ws_event

N_MESSAGES = 1040  # 80 of each of the 13 kinds
ACTIONS = ["createUpload", "getLecture", "startSession", "query", "endSession", "deleteLecture"]


def _junk(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.printable + "éß☃\u0000") for _ in range(n))


def _ill_typed(rng: random.Random) -> Any:
    return rng.choice([None, 1, -1, 1.5, True, [], {}, [1, "a"], {"x": 1}, "", "x" * 300, "../../etc/passwd"])


def _not_json(rng: random.Random) -> tuple[str | bytes, str]:
    return rng.choice(["", "{", "nul", "[1,", "{'a': 1}", _junk(rng, rng.randint(1, 200))]), "bad_request"


def _not_object(rng: random.Random) -> tuple[str | bytes, str]:
    return json.dumps(
        rng.choice([1, "getLecture", [], [{"action": "getLecture"}], None, 3.5, True])
    ), "bad_request"


def _unknown_action(rng: random.Random) -> tuple[str | bytes, str]:
    action = rng.choice(["", "GETLECTURE", "deleteLectures", "$connect", "__proto__", _junk(rng, 500)])
    return json.dumps({"action": action, "lectureId": "lec_1"}), "unknown_action"


def _missing_or_bad_action(rng: random.Random) -> tuple[str | bytes, str]:
    body: dict[str, Any] = {"lectureId": "lec_1"}
    if rng.random() < 0.5:
        body["action"] = rng.choice([1, None, [], {}, True])
    return json.dumps(body), "bad_request"


def _ill_typed_field(rng: random.Random) -> tuple[str | bytes, str]:
    valid: dict[str, dict[str, Any]] = {
        "createUpload": {
            "kind": "lecture",
            "filename": "a.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 10,
        },
        "getLecture": {"lectureId": "lec_1"},
        "startSession": {"lectureId": "lec_1"},
        "query": {"sessionId": "ses_1", "text": "hi"},
        "endSession": {"sessionId": "ses_1"},
        "deleteLecture": {"lectureId": "lec_1"},
    }
    action = rng.choice(ACTIONS)
    body = {"action": action, **valid[action]}
    field = rng.choice(list(valid[action]))
    value = _ill_typed(rng)
    if value is None and rng.random() < 0.5:
        del body[field]
    else:
        body[field] = value
    if action == "createUpload" and field == "filename" and isinstance(value, str) and 0 < len(value) <= 255:
        body["kind"] = "podcast"  # a valid filename: break another field instead
    if action == "query" and field == "text" and isinstance(value, str) and 0 < len(value) <= 4000:
        body["audio"] = "AAAA"  # two inputs at once
    return json.dumps(body), "bad_request"


def _two_inputs(rng: random.Random) -> tuple[str | bytes, str]:
    inputs = {"text": "hi", "audio": "AAAA", "queryKey": "queries/a/b.mp3"}
    chosen = rng.sample(sorted(inputs), rng.choice([0, 2, 3]))
    return json.dumps(
        {"action": "query", "sessionId": "ses_1", **{k: inputs[k] for k in chosen}}
    ), "bad_request"


def _huge(rng: random.Random) -> tuple[str | bytes, str]:
    size = rng.randint(131_073, 300_000)
    return json.dumps({"action": "query", "sessionId": "ses_1", "text": "x" * size}), "too_large"


def _huge_inline_audio(foreign_session: str, rng: random.Random) -> tuple[str | bytes, str]:
    clip = base64.b64encode(rng.randbytes(rng.randint(65_537, 90_000))).decode()
    return json.dumps({"action": "query", "sessionId": foreign_session, "audio": clip}), "too_large"


def _binary(rng: random.Random) -> tuple[str | bytes, str]:
    return rng.randbytes(rng.randint(1, 500)), "bad_request"


def _declared_too_large(rng: random.Random) -> tuple[str | bytes, str]:
    kind = rng.choice(["lecture", "query"])
    size = rng.randint(104_857_601, 10**12) if kind == "lecture" else rng.randint(2_097_153, 10**9)
    body = {
        "action": "createUpload",
        "kind": kind,
        "filename": "a.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": size,
    }
    return json.dumps(body), "too_large"


def _unsupported_media(rng: random.Random) -> tuple[str | bytes, str]:
    ctype = rng.choice(
        # Media types are case-insensitive and their parameters are dropped (contract.CreateUpload),
        # so "audio/MPEG" and "audio/mpeg; x=1" are accepted, and so are video/webm and video/mp4
        # (what file pickers call .webm and .mp4 files); these are not.
        [
            "text/plain",
            "video/x-msvideo",
            "application/octet-stream",
            "audio/mpeg3",
            "text/plain; charset=utf-8",
            "x",
        ]
    )
    body = {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "a.mp3",
        "contentType": ctype,
        "sizeBytes": 10,
    }
    return json.dumps(body), "unsupported_media"


def _foreign_ids(foreign_lecture: str, foreign_session: str, rng: random.Random) -> tuple[str | bytes, str]:
    body = rng.choice(
        [
            {"action": "getLecture", "lectureId": foreign_lecture},
            {"action": "startSession", "lectureId": foreign_lecture},
            {"action": "deleteLecture", "lectureId": foreign_lecture},
            {"action": "endSession", "sessionId": foreign_session},
            {"action": "query", "sessionId": foreign_session, "text": "what did bob learn?"},
            {"action": "getLecture", "lectureId": f"lec_{rng.randbytes(16).hex()}"},
        ]
    )
    return json.dumps(body), "not_found"


def _not_ready(pending_lecture: str, rng: random.Random) -> tuple[str | bytes, str]:
    return json.dumps({"action": "startSession", "lectureId": pending_lecture}), "lecture_not_ready"


def generators(
    foreign_lecture: str, foreign_session: str, pending_lecture: str
) -> list[tuple[str, Callable[[random.Random], tuple[str | bytes, str]]]]:
    """(name, make(rng) -> (frame, expected error code))."""
    return [
        ("not_json", _not_json),
        ("not_object", _not_object),
        ("unknown_action", _unknown_action),
        ("missing_or_bad_action", _missing_or_bad_action),
        ("ill_typed_field", _ill_typed_field),
        ("two_inputs", _two_inputs),
        ("huge", _huge),
        ("huge_inline_audio", partial(_huge_inline_audio, foreign_session)),
        ("binary", _binary),
        ("declared_too_large", _declared_too_large),
        ("unsupported_media", _unsupported_media),
        ("foreign_ids", partial(_foreign_ids, foreign_lecture, foreign_session)),
        ("not_ready", partial(_not_ready, pending_lecture)),
    ]


def test_fuzz_bad_messages(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract is under test here, not the message rate (test_edge_rates.py tests that).
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"rate_connection_messages": 10_000})
    )
    for cid, owner in (("conn-mallory", "mallory"), ("conn-bob", "bob")):
        assert handle(ws_event("$connect", cid, identity=owner), deps)["statusCode"] == 200
    key = "lectures/bob/lec_bob.mp3"
    deps.store.create_pending_lecture("lec_bob", "bob", key, "audio/mpeg", 10, "conn-bob", "b.mp3")
    deps.store.update_lecture("lec_bob", {"status": "ready", "contextMode": "audio", "durationSeconds": 5.0})
    session = deps.store.create_session("ses_bob", "bob", "lec_bob", "audio")
    deps.store.create_pending_lecture(
        "lec_mine", "mallory", "lectures/mallory/lec_mine.mp3", "audio/mpeg", 10, None, "m"
    )
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=b"bob's lecture")
    before = table_snapshot(deps)

    rng = random.Random(20261125)
    gens = generators("lec_bob", session["sessionId"], "lec_mine")
    counts: dict[str, int] = {}
    for i in range(N_MESSAGES):
        name, make = gens[i % len(gens)]
        frame, expected = make(rng)
        if isinstance(frame, bytes):
            event = ws_event(
                "$default", "conn-mallory", body=base64.b64encode(frame).decode(), base64_body=True
            )
        else:
            event = ws_event("$default", "conn-mallory", body=frame)
        seen = len(pushed("conn-mallory"))
        assert handle(event, deps)["statusCode"] == 200
        out = pushed("conn-mallory")[seen:]
        assert len(out) == 1 and out[0]["type"] == "error", (name, frame[:200], out)
        assert out[0]["code"] == expected, (name, frame[:300], out[0])
        assert "Traceback" not in out[0]["message"] and len(out[0]["message"]) < 600
        counts[name] = counts.get(name, 0) + 1
    assert sum(counts.values()) == N_MESSAGES and len(counts) == len(gens)
    assert table_snapshot(deps) == before
    assert agentcore.requests == []
    assert pushed("conn-bob") == []
    conn = deps.store.get_connection("conn-mallory")
    assert conn is not None and conn["owner"] == "mallory"
