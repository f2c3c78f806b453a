"""The WebSocket Lambda on moto: every action, every error code, ownership, unchanged state."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import requests
from synapscribe.connections import ConnectionPusher
from synapscribe.edge import websocket_handler
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.push import connections_endpoint
from synapscribe.edge.websocket_handler import handle
from synapscribe.keys import PENDING_TAGGING

from .edge_support import (
    CONNECTIONS_ENDPOINT,
    AgentCoreRecorder,
    GoneClient,
    closed_port_url,
    connect,
    make_lecture,
    one,
    pushed,
    send,
    table_snapshot,
    ws_event,
)

# --------------------------------------------------------------------------- connect / disconnect


def test_connect_binds_owner_with_ttl(deps: EdgeDeps, alice: str) -> None:
    conn = deps.store.get_connection(alice)
    assert conn is not None and conn["owner"] == "alice"
    assert conn["expiresAt"] - conn["connectedAt"] == deps.platform.sessions.connection_ttl_seconds


def test_connect_without_identity_gets_fresh_random_one(deps: EdgeDeps) -> None:
    assert connect(deps, "c1", None)["statusCode"] == 200
    assert connect(deps, "c2", "")["statusCode"] == 200
    a, b = deps.store.get_connection("c1"), deps.store.get_connection("c2")
    assert a and b and a["owner"] != b["owner"] and a["owner"].startswith("anon-")


def test_connect_with_invalid_identity_is_refused(deps: EdgeDeps) -> None:
    resp = connect(deps, "c1", "bad identity/with spaces")
    assert resp["statusCode"] == 400 and "identity" in resp["body"]
    assert deps.store.get_connection("c1") is None


def test_cognito_mode_ignores_query_parameter(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"identity_source": "cognito"}))
    event = ws_event("$connect", "c1", identity="mallory", cognito="eu-west-1:1234-abcd")
    assert handle(event, deps)["statusCode"] == 200
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn["owner"] == "eu-west-1:1234-abcd"
    refused = handle(ws_event("$connect", "c2", identity="mallory"), deps)
    assert refused["statusCode"] == 403
    assert deps.store.get_connection("c2") is None


def test_identity_source_defaults_to_cognito(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNAPSCRIBE_IDENTITY_SOURCE")
    from synapscribe.edge.config import EdgeSettings

    assert EdgeSettings().identity_source == "cognito"


def test_disconnect_deletes_connection(deps: EdgeDeps, alice: str) -> None:
    assert handle(ws_event("$disconnect", alice), deps)["statusCode"] == 200
    assert deps.store.get_connection(alice) is None


def test_connect_failure_is_500_with_logged_reference(
    deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("table gone")

    monkeypatch.setattr(deps.store, "put_connection", boom)
    resp = connect(deps, "c1", "alice")
    assert resp["statusCode"] == 500 and "table gone" not in resp["body"]
    ref = resp["body"].split("reference ")[1]
    assert any(ref in r.getMessage() for r in caplog.records)


def test_event_without_connection_id_is_400(deps: EdgeDeps) -> None:
    assert handle({"requestContext": {"routeKey": "$default"}}, deps)["statusCode"] == 400
    assert handle({}, deps)["statusCode"] == 400


def test_unregistered_connection_gets_internal_error(deps: EdgeDeps) -> None:
    msg = one(deps, "never-connected", {"action": "getLecture", "lectureId": "lec_x"})
    assert msg["type"] == "error" and msg["code"] == "internal" and "reconnect" in msg["message"]


def test_lambda_entrypoint_reads_environment(deps: EdgeDeps) -> None:
    resp = websocket_handler.handler(ws_event("$connect", "c-env", identity="carol"), None)
    assert resp["statusCode"] == 200
    conn = deps.store.get_connection("c-env")
    assert conn is not None and conn["owner"] == "carol"


# --------------------------------------------------------------------------- createUpload


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


def test_create_lecture_upload_and_post_it(deps: EdgeDeps, alice: str) -> None:
    msg = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "lecture",
            "filename": "bio 101.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 1234,
        },
    )
    limits = deps.platform.limits
    assert msg["type"] == "uploadUrl"
    lecture_id, key = msg["uploadId"], msg["key"]
    assert key == f"lectures/alice/{lecture_id}.mp3"
    # At most the declared size (the service's ceilings count declared bytes), for a minute, and
    # the object carries the pending tag the lifecycle rule removes unless it is validated.
    assert msg["maxBytes"] == 1234
    assert msg["expiresIn"] == limits.upload_url_expiry_seconds == 60
    conditions = _policy(msg["fields"])["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert {"tagging": PENDING_TAGGING} in conditions and msg["fields"]["tagging"] == PENDING_TAGGING
    assert {"Content-Type": "audio/mpeg"} in conditions
    assert {"key": key} in conditions
    assert {"bucket": deps.resources.bucket} in conditions

    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None
    assert item["status"] == "pending" and item["connectionId"] == alice and item["key"] == key
    assert item["declaredBytes"] == 1234 and item["filename"] == "bio 101.mp3"

    # The presigned POST works: moto answers the URL the handler handed out.
    resp = requests.post(
        msg["url"], data=msg["fields"], files={"file": ("x.mp3", b"\xff\xfb" + b"\0" * 100)}, timeout=10
    )
    assert resp.status_code == 204, resp.text
    obj = deps.s3.head_object(Bucket=deps.resources.bucket, Key=key)
    assert obj["ContentLength"] == 102 and obj["ContentType"] == "audio/mpeg"


def test_presigned_policy_refuses_what_s3_would_refuse(deps: EdgeDeps, alice: str) -> None:
    """moto accepts any POST, so the policy is judged with the local stack's S3 policy check."""
    from synapscribe_local import s3_post_policy as policy

    msg = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "lecture",
            "filename": "a.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 9,
        },
    )
    creds = deps.s3._request_signer._credentials.get_frozen_credentials()
    secrets = {creds.access_key: creds.secret_key}
    bucket, fields, cap = deps.resources.bucket, msg["fields"], msg["maxBytes"]
    policy.check_policy(bucket, fields, cap, secrets)  # at the limit: accepted
    refusals = [
        ({**fields}, cap + 1, "EntityTooLarge"),
        ({**fields}, 0, "EntityTooSmall"),
        ({**fields, "Content-Type": "text/html"}, 5, "AccessDenied"),
        ({**fields, "key": msg["key"].replace("/alice/", "/bob/")}, 5, "AccessDenied"),
        ({**fields, "x-amz-signature": "0" * 64}, 5, "SignatureDoesNotMatch"),
        # The pending marker is required: without it (or with another tag) the object could stay.
        ({k: v for k, v in fields.items() if k != "tagging"}, 5, "AccessDenied"),
        ({**fields, "tagging": fields["tagging"].replace("pending", "validated")}, 5, "AccessDenied"),
    ]
    for form, size, code in refusals:
        with pytest.raises(policy.PolicyViolation) as exc:
            policy.check_policy(bucket, form, size, secrets)
        assert exc.value.code == code, (form, size)


def test_create_query_upload(deps: EdgeDeps, alice: str) -> None:
    msg = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "query",
            "filename": "q.wav",
            "contentType": "audio/wav",
            "sizeBytes": 10,
        },
    )
    assert msg["key"] == f"queries/alice/{msg['uploadId']}.wav"
    assert msg["maxBytes"] == 10
    assert ["content-length-range", 1, 10] in _policy(msg["fields"])["conditions"]
    assert deps.store.get_lecture(msg["uploadId"], None) is None


@pytest.mark.parametrize(
    ("blob_type", "ext"),
    [
        ("audio/webm;codecs=opus", "webm"),
        ("audio/mp4; codecs=mp4a.40.2", "m4a"),
        ("Audio/MP4", "m4a"),
        # What a browser's file picker says of a .webm or .mp4 file, even one holding only sound.
        ("video/webm", "webm"),
        ("video/mp4", "m4a"),
    ],
)
def test_create_upload_takes_what_browsers_call_recordings(
    deps: EdgeDeps, alice: str, blob_type: str, ext: str
) -> None:
    """A MediaRecorder blob's type carries codec parameters (the media type decides) and a file
    picker calls .webm and .mp4 files video/…; the bytes are checked when they arrive."""
    msg = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "query",
            "filename": "q",
            "contentType": blob_type,
            "sizeBytes": 10,
        },
    )
    assert msg["type"] == "uploadUrl", msg
    assert msg["key"] == f"queries/alice/{msg['uploadId']}.{ext}"
    assert msg["fields"]["Content-Type"] == blob_type.split(";")[0].strip().lower()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            {"kind": "lecture", "filename": "a.txt", "contentType": "text/plain", "sizeBytes": 10},
            "unsupported_media",
        ),
        (
            {"kind": "lecture", "filename": "a.mp3", "contentType": "audio/mpeg", "sizeBytes": 10**9},
            "too_large",
        ),
        (
            {"kind": "query", "filename": "a.mp3", "contentType": "audio/mpeg", "sizeBytes": 3 * 1024 * 1024},
            "too_large",
        ),
        ({"kind": "video", "filename": "a.mp3", "contentType": "audio/mpeg", "sizeBytes": 10}, "bad_request"),
        (
            {"kind": "lecture", "filename": "a.mp3", "contentType": "audio/mpeg", "sizeBytes": "10"},
            "bad_request",
        ),
        ({"kind": "lecture", "filename": "", "contentType": "audio/mpeg", "sizeBytes": 10}, "bad_request"),
        (
            {"kind": "lecture", "filename": "a.mp3", "contentType": "audio/mpeg", "sizeBytes": 0},
            "bad_request",
        ),
    ],
)
def test_create_upload_errors_change_nothing(
    deps: EdgeDeps, alice: str, message: dict[str, Any], code: str
) -> None:
    before = table_snapshot(deps)
    msg = one(deps, alice, {"action": "createUpload", **message})
    assert msg["type"] == "error" and msg["code"] == code, msg
    assert table_snapshot(deps) == before


# --------------------------------------------------------------------------- lectures and sessions


def test_get_lecture_own_foreign_unknown(deps: EdgeDeps, alice: str, bob: str) -> None:
    lecture_id = make_lecture(deps, "alice", "ready")
    msg = one(deps, alice, {"action": "getLecture", "lectureId": lecture_id})
    assert msg == {
        "type": "lecture",
        "lectureId": lecture_id,
        "status": "ready",
        "durationSeconds": 60.0,
        "contextMode": "audio",
    }
    foreign = one(deps, bob, {"action": "getLecture", "lectureId": lecture_id})
    unknown = one(deps, bob, {"action": "getLecture", "lectureId": "lec_nope"})
    assert foreign["code"] == unknown["code"] == "not_found"
    assert foreign["message"].replace(lecture_id, "X") == unknown["message"].replace("lec_nope", "X")


def test_errors_echo_the_request_id(deps: EdgeDeps, alice: str) -> None:
    msg = one(deps, alice, {"action": "getLecture", "lectureId": "lec_nope", "requestId": "r-7"})
    assert msg["code"] == "not_found" and msg["requestId"] == "r-7"
    body = {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "a",
        "contentType": "text/html",
        "sizeBytes": 1,
    }
    msg = one(deps, alice, {**body, "requestId": "r-8"})
    assert msg["code"] == "unsupported_media" and msg["requestId"] == "r-8"
    msg = one(deps, alice, {**body, "requestId": "not a valid id!"})
    assert msg["code"] == "unsupported_media" and "requestId" not in msg


def test_get_rejected_lecture_carries_reason(deps: EdgeDeps, alice: str) -> None:
    lecture_id = make_lecture(deps, "alice", "rejected")
    msg = one(deps, alice, {"action": "getLecture", "lectureId": lecture_id})
    assert msg["status"] == "rejected" and msg["reason"] == "too long" and "contextMode" not in msg


def test_start_and_end_session(deps: EdgeDeps, alice: str, bob: str) -> None:
    lecture_id = make_lecture(deps, "alice", "ready", mode="transcript")
    session = one(deps, alice, {"action": "startSession", "lectureId": lecture_id})
    assert session["type"] == "session" and session["lectureId"] == lecture_id
    assert session["contextMode"] == "transcript"
    stored = deps.store.get_session(session["sessionId"], "alice")
    assert stored is not None and stored["expiresAt"] == session["expiresAt"]

    before = table_snapshot(deps)
    assert one(deps, bob, {"action": "endSession", "sessionId": session["sessionId"]})["code"] == "not_found"
    assert one(deps, bob, {"action": "startSession", "lectureId": lecture_id})["code"] == "not_found"
    assert table_snapshot(deps) == before

    ended = one(deps, alice, {"action": "endSession", "sessionId": session["sessionId"]})
    assert ended == {"type": "sessionEnded", "sessionId": session["sessionId"]}
    assert deps.store.get_session(session["sessionId"], None) is None
    assert (
        one(deps, alice, {"action": "endSession", "sessionId": session["sessionId"]})["code"] == "not_found"
    )


@pytest.mark.parametrize("status", ["pending", "transcribing", "rejected"])
def test_start_session_on_unready_lecture(deps: EdgeDeps, alice: str, status: str) -> None:
    lecture_id = make_lecture(deps, "alice", status)
    before = table_snapshot(deps)
    msg = one(deps, alice, {"action": "startSession", "lectureId": lecture_id})
    assert msg["code"] == "lecture_not_ready" and lecture_id in msg["message"]
    assert table_snapshot(deps) == before


# --------------------------------------------------------------------------- query


def test_query_is_handed_to_agentcore_at_once(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    out = send(
        deps, alice, {"action": "query", "sessionId": session_id, "text": "What is ATP?", "voice": False}
    )
    assert out == []  # the answer streams from AgentCore, not from the Lambda
    assert len(agentcore.requests) == 1
    path, job = agentcore.requests[0]
    assert path == "/v1/queries"
    assert job["connectionId"] == alice and job["owner"] == "alice" and job["sessionId"] == session_id
    assert job["text"] == "What is ATP?" and job["voice"] is False
    assert job["requestId"].startswith("req_") and isinstance(job["receivedAtMs"], int)
    assert "audio" not in job and "queryKey" not in job


def test_query_echoes_client_request_id_and_audio(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    clip = base64.b64encode(b"RIFF" + b"\0" * 200).decode()
    send(deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-1", "audio": clip})
    job = agentcore.requests[-1][1]
    assert job["requestId"] == "r-1" and job["audio"] == clip and job["voice"] is True


def test_query_key_must_be_own_existing_query_upload(
    deps: EdgeDeps, alice: str, bob: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    own = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "query",
            "filename": "q.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 5,
        },
    )
    bobs = one(
        deps,
        bob,
        {
            "action": "createUpload",
            "kind": "query",
            "filename": "q.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 5,
        },
    )
    for upload in (own, bobs):
        deps.s3.put_object(Bucket=deps.resources.bucket, Key=upload["key"], Body=b"\xff\xfb\0\0\0")
    lecture = one(
        deps,
        alice,
        {
            "action": "createUpload",
            "kind": "lecture",
            "filename": "l.mp3",
            "contentType": "audio/mpeg",
            "sizeBytes": 5,
        },
    )
    not_uploaded = f"queries/alice/qry_{'0' * 32}.mp3"
    for key in (bobs["key"], lecture["key"], not_uploaded, "queries/alice/../bob/x.mp3", "responses/x"):
        msg = one(
            deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-2", "queryKey": key}
        )
        assert msg["code"] == "not_found" and msg["requestId"] == "r-2", (key, msg)
    assert agentcore.requests == []
    assert send(deps, alice, {"action": "query", "sessionId": session_id, "queryKey": own["key"]}) == []
    assert agentcore.requests[-1][1]["queryKey"] == own["key"]


def test_query_on_foreign_or_unknown_session(
    deps: EdgeDeps, bob: str, session_id: str, agentcore: AgentCoreRecorder
) -> None:
    for sid in (session_id, "ses_unknown"):
        msg = one(deps, bob, {"action": "query", "sessionId": sid, "requestId": "r-9", "text": "hi"})
        assert msg == {
            "type": "error",
            "code": "not_found",
            "message": f"session {sid!r} not found",
            "requestId": "r-9",
        }
    assert agentcore.requests == []


@pytest.mark.parametrize(
    ("status", "code"), [(503, "busy"), (429, "busy"), (500, "upstream_unavailable"), (400, "internal")]
)
def test_query_agentcore_refusals(
    deps: EdgeDeps, alice: str, session_id: str, agentcore: AgentCoreRecorder, status: int, code: str
) -> None:
    agentcore.status = status
    before = table_snapshot(deps)
    msg = one(deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-3", "text": "hi"})
    assert msg["code"] == code and msg["requestId"] == "r-3"
    assert table_snapshot(deps) == before


def test_query_agentcore_unreachable(
    deps: EdgeDeps, alice: str, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()})
    )
    msg = one(deps, alice, {"action": "query", "sessionId": session_id, "text": "hi"})
    assert msg["code"] == "upstream_unavailable" and "AgentCore" in msg["message"]
    assert "requestId" not in msg


# --------------------------------------------------------------------------- bad messages


BAD = [
    ("not json", "bad_request"),
    ("[1, 2]", "bad_request"),
    ('"createUpload"', "bad_request"),
    ("{}", "bad_request"),
    ('{"action": 5}', "bad_request"),
    ('{"action": "deleteEverything"}', "unknown_action"),
    ('{"action": "getLecture"}', "bad_request"),
    ('{"action": "getLecture", "lectureId": "../../etc"}', "bad_request"),
    ('{"action": "query", "sessionId": "s", "text": "a", "audio": "AAAA"}', "bad_request"),
    ('{"action": "query", "sessionId": "s"}', "bad_request"),
    ('{"action": "query", "sessionId": "s", "audio": "!!!"}', "bad_request"),
    ('{"action": "query", "sessionId": "s", "text": "a", "voice": 1}', "bad_request"),
    ("x" * 200_000, "too_large"),
]


@pytest.mark.parametrize(("body", "code"), BAD)
def test_bad_messages_answer_error_and_change_nothing(
    deps: EdgeDeps, alice: str, agentcore: AgentCoreRecorder, body: str, code: str
) -> None:
    before = table_snapshot(deps)
    msg = one(deps, alice, body)
    assert msg["type"] == "error" and msg["code"] == code, msg
    assert table_snapshot(deps) == before
    assert agentcore.requests == []
    assert deps.store.get_connection(alice) is not None


def test_inline_audio_over_limit_is_too_large(deps: EdgeDeps, alice: str, session_id: str) -> None:
    clip = base64.b64encode(b"\0" * (deps.platform.limits.inline_audio_max_bytes + 1)).decode()
    msg = one(deps, alice, {"action": "query", "sessionId": session_id, "requestId": "r-4", "audio": clip})
    assert msg["code"] == "too_large" and msg["requestId"] == "r-4"


def test_binary_frame_and_empty_body(deps: EdgeDeps, alice: str) -> None:
    before = len(pushed(alice))
    event = ws_event("$default", alice, body=base64.b64encode(b"\x00\x01binary").decode(), base64_body=True)
    assert handle(event, deps)["statusCode"] == 200
    event = ws_event("$default", alice)
    assert handle(event, deps)["statusCode"] == 200
    codes = [m["code"] for m in pushed(alice)[before:]]
    assert codes == ["bad_request", "bad_request"]


def test_unexpected_exception_is_internal_with_logged_id(
    deps: EdgeDeps, alice: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(deps.store, "get_lecture", boom)
    with caplog.at_level(logging.ERROR):
        msg = one(deps, alice, {"action": "getLecture", "lectureId": "lec_1", "requestId": "r-5"})
    assert msg["code"] == "internal" and msg["requestId"] == "r-5"
    assert "database on fire" not in msg["message"] and "Traceback" not in msg["message"]
    ref = msg["message"].split("reference ")[1].split()[0]
    assert any(ref in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- pushing


def test_gone_connection_is_ignored(deps: EdgeDeps, alice: str) -> None:
    gone = GoneClient()
    deps.pushers[CONNECTIONS_ENDPOINT] = ConnectionPusher(CONNECTIONS_ENDPOINT, client=gone)
    resp = handle(ws_event("$default", alice, body='{"action": "nope"}'), deps)
    assert resp["statusCode"] == 200 and gone.calls == 1


def test_endpoint_from_event_when_not_configured(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    assert connections_endpoint(deps, {"domainName": "x", "stage": "prod"}) == CONNECTIONS_ENDPOINT
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"connections_endpoint": None}))
    assert connections_endpoint(deps, {"domainName": "a.b.c", "stage": "prod"}) == "https://a.b.c/prod"
    assert connections_endpoint(deps, {}) is None


def test_edge_imports_only_what_the_lambda_bundle_carries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, synapscribe.edge.websocket_handler, synapscribe.edge.validate_lecture;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    allowed = {"pydantic", "pydantic_core", "pydantic_settings", "yaml", "boto3", "mutagen", "synapscribe"}
    # What those pull in themselves.
    allowed |= {"botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3", "certifi", "dotenv"}
    allowed |= {"annotated_types", "typing_extensions", "typing_inspection", "cython_runtime"}
    foreign = {m for m in loaded - allowed - set(sys.stdlib_module_names) if not m.startswith("_")}
    assert foreign == set()
