"""The WebSocket API's Lambda: $connect, $disconnect, $default and the contract's actions.

Every client message is parsed with the contract; every failure is answered with an `error`
message on the connection (through @connections) and the route returns 200 so the connection
lives on. Nothing is written before a message has passed all its checks.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from synapscribe import final_claim, keys
from synapscribe.ceilings import ServiceLimit, address_key
from synapscribe.contract import (
    IDENTITY_RE,
    REQUEST_ID_PATTERN,
    Cancel,
    ContractError,
    CreateUpload,
    DeleteLecture,
    EndSession,
    ErrorCode,
    ErrorMessage,
    GetLecture,
    GetLectureAudio,
    GetSession,
    Lecture,
    LectureDeleted,
    ListLectures,
    Query,
    ServerModel,
    Session,
    SessionEnded,
    StartSession,
    UploadUrl,
    Warming,
    parse_client_message,
)
from synapscribe.edge import warming
from synapscribe.edge.affinity import post_routed
from synapscribe.edge.agentcore_client import (
    AgentCoreBusy,
    AgentCoreRejected,
    AgentCoreTimeout,
    AgentCoreUnavailable,
)
from synapscribe.edge.config import CachedDeps, EdgeDeps
from synapscribe.edge.history import get_lecture_audio, get_session, list_lectures
from synapscribe.edge.interrupt import cancel_query
from synapscribe.edge.push import push
from synapscribe.edge.rates import MessageRates, WindowCounter, source_ip
from synapscribe.edge.removal import record_session_clip, remove_lecture
from synapscribe.planner import question_text_too_large
from synapscribe.quotas import QuotaExceeded

log = logging.getLogger(__name__)

deps = CachedDeps()
reset_deps = deps.reset


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, deps())


def _status(code: int, body: str = "") -> dict[str, Any]:
    return {"statusCode": code, "body": body}


def handle(event: dict[str, Any], deps: EdgeDeps) -> dict[str, Any]:
    rc = event.get("requestContext")
    if not isinstance(rc, dict):
        return _status(400, "not an API Gateway WebSocket event: requestContext missing")
    connection_id = rc.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        return _status(400, "requestContext.connectionId missing")
    route = rc.get("routeKey")
    if route in ("$connect", "$disconnect"):
        try:
            if route == "$connect":
                return _connect(event, rc, connection_id, deps)
            deps.store.delete_connection(connection_id)
            return _status(200)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("internal error %s on %s of connection %s", error_id, route, connection_id)
            return _status(500, f"internal error; reference {error_id}")
    reply = _answer(event, rc, connection_id, deps)
    if reply is not None:
        push(deps, connection_id, reply, rc)
    return _status(200)


# --------------------------------------------------------------------------- connect


def _connect(event: dict[str, Any], rc: dict[str, Any], connection_id: str, deps: EdgeDeps) -> dict[str, Any]:
    address = address_key(source_ip(rc))
    if address is None:
        # Every allowance is keyed by it: without one nothing could bound this caller.
        log.warning("$connect without a source address (connection %s)", connection_id)
        return _status(403, "the connection has no source address")
    per_minute = (deps.settings.per_address or deps.platform.per_address).connections_per_minute
    if not WindowCounter(deps.store.limits, 60, deps.store.now).hit(f"connect#{address}", per_minute):
        return _status(
            429, f"more than {per_minute} new connections a minute from this address; wait a minute"
        )
    if deps.settings.identity_source == "query":
        params = event.get("queryStringParameters") or {}
        identity = params.get("identity") if isinstance(params, dict) else None
        if identity is None or identity == "":
            identity = f"anon-{uuid.uuid4().hex}"
        elif not isinstance(identity, str) or not IDENTITY_RE.fullmatch(identity):
            return _status(400, "identity: 1 to 128 characters of A-Z a-z 0-9 : _ . -")
    else:
        identity = (rc.get("identity") or {}).get("cognitoIdentityId")
        if not isinstance(identity, str) or not IDENTITY_RE.fullmatch(identity):
            log.warning("$connect without a Cognito identity (connection %s)", connection_id)
            return _status(403, "a Cognito identity is required")
    deps.store.put_connection(connection_id, identity)
    return _status(200)


def _owner(rc: dict[str, Any], connection_id: str, deps: EdgeDeps) -> str:
    conn = deps.store.get_connection(connection_id)
    if conn is not None:
        return str(conn["owner"])
    if deps.settings.identity_source == "cognito":
        identity = (rc.get("identity") or {}).get("cognitoIdentityId")
        if isinstance(identity, str) and IDENTITY_RE.fullmatch(identity):
            deps.store.put_connection(connection_id, identity)
            return identity
    raise ContractError(
        ErrorCode.INTERNAL, "this connection is not registered (it may have expired): reconnect"
    )


# --------------------------------------------------------------------------- messages


def _frame(event: dict[str, Any]) -> str | bytes:
    body = event.get("body")
    if body is None:
        return ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return b"\x00"
    return body if isinstance(body, str | bytes) else str(body)


def _request_id_of(frame: str | bytes, limit: int) -> str | None:
    """The client's requestId, read again from the raw frame for an error answer."""
    if len(frame) > limit:
        return None
    try:
        value = json.loads(frame).get("requestId")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and re.fullmatch(REQUEST_ID_PATTERN, value) else None


def _answer(
    event: dict[str, Any], rc: dict[str, Any], connection_id: str, deps: EdgeDeps
) -> ServerModel | None:
    frame = _frame(event)
    try:
        # Before anything else, so a flood costs one counter update per message and no more.
        address = address_key(source_ip(rc))
        MessageRates(deps.store, deps.rates).admit(connection_id, address)
        message = parse_client_message(frame, deps.platform)
        _check_route(message.action, rc.get("routeKey"))
        owner = _owner(rc, connection_id, deps)
        action: Callable[[Any, Caller, EdgeDeps], ServerModel | None] = _ACTIONS[type(message)]
        return action(message, Caller(owner, connection_id, str(address)), deps)
    except ServiceLimit as exc:
        return ErrorMessage(
            code=ErrorCode.SERVICE_LIMIT,
            message=exc.message,
            requestId=_request_id_of(frame, deps.platform.limits.message_max_bytes),
        )
    except QuotaExceeded as exc:
        return ErrorMessage(
            code=ErrorCode.QUOTA_EXCEEDED,
            message=exc.message,
            requestId=_request_id_of(frame, deps.platform.limits.message_max_bytes),
        )
    except ContractError as exc:
        if exc.request_id is None:
            exc.request_id = _request_id_of(frame, deps.platform.limits.message_max_bytes)
        return exc.to_message()
    except Exception:
        request_id = _request_id_of(frame, deps.platform.limits.message_max_bytes)
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s on connection %s", error_id, connection_id)
        return ErrorMessage(
            code=ErrorCode.INTERNAL,
            message=f"internal error; quote reference {error_id} when reporting it",
            requestId=request_id,
        )


@dataclass(frozen=True)
class Caller:
    """Who sent a message: its owner, its connection and its address's allowance key."""

    owner: str
    connection_id: str
    address: str


def _check_route(action: str, route: Any) -> None:
    """A message is acted on only on its own route, so each route's throttle (cdk.json
    `route_throttles`) binds it: API Gateway sends what its route selection cannot read to
    `$default`, and Python's parser could still make an action of it."""
    if route != action:
        raise ContractError(
            ErrorCode.BAD_REQUEST,
            f"a {action!r} message arrived on route {str(route)[:40]!r}: send strict JSON (no NaN, "
            "Infinity or repeated keys) whose `action` API Gateway can route",
        )


def _create_upload(msg: CreateUpload, caller: Caller, deps: EdgeDeps) -> UploadUrl:
    owner = caller.owner
    deps.require_intake_open("uploads")
    limits = deps.platform.limits
    ext = limits.accepted_content_types[msg.contentType]
    if msg.kind == "lecture":
        upload_id = keys.new_id("lec")
        key = keys.lecture_key(owner, upload_id, ext, deps.platform)
    else:
        upload_id = keys.new_id("qry")
        key = keys.query_key(owner, upload_id, ext, deps.platform)
    # The policy enforces the key, the exact content type and at most the declared size (the
    # ceilings count declared bytes); a lecture must carry the pending tag, which the bucket's
    # lifecycle removes within a day unless the validator promotes it (keys.PENDING_TAGGING).
    fields = {"Content-Type": msg.contentType}
    if msg.kind == "lecture":
        fields["tagging"] = keys.PENDING_TAGGING
    post = deps.s3.generate_presigned_post(
        Bucket=deps.resources.bucket,
        Key=key,
        Fields=fields,
        Conditions=[*({k: v} for k, v in fields.items()), ["content-length-range", 1, msg.sizeBytes]],
        ExpiresIn=limits.upload_url_expiry_seconds,
    )
    give_back = _admit_upload(msg, caller, deps)
    try:
        _reserve_upload(msg, caller, upload_id, key, deps)
    except Exception:
        give_back()  # refused by a quota (or failed): the service's and the address's count come back
        raise
    return UploadUrl(
        uploadId=upload_id,
        key=key,
        url=post["url"],
        fields={k: str(v) for k, v in post["fields"].items()},
        expiresIn=limits.upload_url_expiry_seconds,
        maxBytes=msg.sizeBytes,
    )


def _admit_upload(msg: CreateUpload, caller: Caller, deps: EdgeDeps) -> Callable[[], None]:
    if msg.kind == "lecture":
        return deps.ceilings.admit_lecture_upload(caller.address, msg.sizeBytes)
    return deps.ceilings.admit_query_upload(caller.address, msg.sizeBytes)


def _reserve_upload(msg: CreateUpload, caller: Caller, upload_id: str, key: str, deps: EdgeDeps) -> None:
    # Charged (and the pending lecture put) in one transaction: over a quota nothing is stored.
    if msg.kind == "lecture":
        deps.quotas.reserve_lecture_upload(
            deps.store.pending_lecture_item(
                upload_id,
                caller.owner,
                key,
                msg.contentType,
                msg.sizeBytes,
                caller.connection_id,
                msg.filename,
            )
        )
    else:
        deps.quotas.reserve_query_upload(caller.owner, upload_id)


def _not_found(what: str, ident: str, request_id: str | None = None) -> ContractError:
    return ContractError(ErrorCode.NOT_FOUND, f"{what} {ident!r} not found", request_id)


def _get_lecture(msg: GetLecture, caller: Caller, deps: EdgeDeps) -> Lecture:
    owner = caller.owner
    item = deps.store.get_lecture(msg.lectureId, owner)
    if item is None:
        raise _not_found("lecture", msg.lectureId)
    return Lecture.from_item(item)


def _start_session(msg: StartSession, caller: Caller, deps: EdgeDeps) -> Session:
    owner = caller.owner
    lecture = deps.store.get_lecture(msg.lectureId, owner)
    if lecture is None:
        raise _not_found("lecture", msg.lectureId)
    if lecture["status"] != "ready" or not lecture.get("contextMode"):
        detail = {
            "pending": "its upload has not been validated yet",
            "transcribing": "it is still being transcribed",
            "rejected": f"it was rejected: {lecture.get('reason', '')}",
        }.get(lecture["status"], f"its status is {lecture['status']}")
        raise ContractError(
            ErrorCode.LECTURE_NOT_READY,
            f"lecture {msg.lectureId!r} is not ready ({detail}); wait for its `lecture` message "
            "with status ready",
        )
    session = deps.store.create_session(keys.new_id("ses"), owner, msg.lectureId, lecture["contextMode"])
    # Recorded on the lecture so deleteLecture ends it; a lecture deleted meanwhile takes it along.
    if not deps.store.add_lecture_session(msg.lectureId, session["sessionId"]):
        deps.store.delete_session(session["sessionId"])
        raise _not_found("lecture", msg.lectureId)
    return Session(
        sessionId=session["sessionId"],
        lectureId=msg.lectureId,
        contextMode=session["contextMode"],
        expiresAt=int(session["expiresAt"]),
    )


def _delete_lecture(msg: DeleteLecture, caller: Caller, deps: EdgeDeps) -> LectureDeleted:
    owner = caller.owner
    lecture = deps.store.get_lecture(msg.lectureId, owner)
    if lecture is None:
        raise _not_found("lecture", msg.lectureId)
    remove_lecture(deps, lecture)
    return LectureDeleted(lectureId=msg.lectureId)


def _end_session(msg: EndSession, caller: Caller, deps: EdgeDeps) -> SessionEnded:
    owner = caller.owner
    if not deps.store.end_session(msg.sessionId, owner):
        raise _not_found("session", msg.sessionId)
    return SessionEnded(sessionId=msg.sessionId)


def _check_query_key(query_key: str, owner: str, request_id: str | None, deps: EdgeDeps) -> None:
    parsed = keys.parse_upload_key(query_key, deps.platform)
    if parsed is None or parsed[0] != "query" or parsed[1] != owner:
        raise _not_found("queryKey", query_key[:200], request_id)
    try:
        deps.s3.head_object(Bucket=deps.resources.bucket, Key=query_key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (403, 404):
            raise _not_found("queryKey", query_key, request_id) from None
        raise


def _admit_question(owner: str, job_key: str, client_request_id: str | None, deps: EdgeDeps) -> None:
    """The service's ceilings (questions today, GPU host-hours), then the owner's quotas; a
    question the owner's quota refuses is not counted against the service."""
    give_back = deps.ceilings.admit_question()
    try:
        deps.quotas.start_question(owner, job_key)
    except QuotaExceeded as exc:
        give_back()
        raise ContractError(ErrorCode.QUOTA_EXCEEDED, exc.message, client_request_id) from None


def _query(msg: Query, caller: Caller, deps: EdgeDeps) -> Warming | None:
    owner, connection_id = caller.owner, caller.connection_id
    deps.require_intake_open("questions")
    received_at_ms = int(time.time() * 1000)
    client_request_id = msg.requestId
    # Without the model's tokenizer: only a question surely over its reserve (UTF-8 bytes bound it).
    if msg.text is not None and (too_large := question_text_too_large(msg.text, deps.platform)):
        raise ContractError(ErrorCode.TOO_LARGE, too_large, client_request_id)
    session = deps.store.get_session(msg.sessionId, owner)
    if session is None:
        raise _not_found("session", msg.sessionId, client_request_id)
    if msg.queryKey is not None:
        _check_query_key(msg.queryKey, owner, client_request_id, deps)
    job: dict[str, Any] = {
        "connectionId": connection_id,
        "owner": owner,
        "sessionId": msg.sessionId,
        "requestId": client_request_id or keys.new_id("req"),
        "voice": msg.voice,
        "receivedAtMs": received_at_ms,
    }
    for field in ("text", "audio", "queryKey"):
        value = getattr(msg, field)
        if value is not None:
            job[field] = value
    job_key = final_claim.key(job["requestId"], received_at_ms)
    _admit_question(owner, job_key, client_request_id, deps)
    parsed_key = keys.parse_upload_key(msg.queryKey, deps.platform) if msg.queryKey else None
    if parsed_key is not None and msg.queryKey is not None:
        record_session_clip(deps, msg.sessionId, msg.queryKey)  # deleteLecture deletes it too
        deps.quotas.release_upload(owner, parsed_key[2])  # the clip's upload is done: it is used
    try:
        return _hand_off_query(job, client_request_id, connection_id, deps, str(session.get("lectureId", "")))
    except ContractError:
        # Not handed over (or not confirmed): the job slot comes back now. AgentCore gives it back
        # too when it answers one it did take, and an unanswered one ends with its lease.
        deps.quotas.finish_job(owner, job_key)
        raise


def _hand_off_query(
    job: dict[str, Any],
    client_request_id: str | None,
    connection_id: str,
    deps: EdgeDeps,
    lecture_id: str = "",
) -> Warming | None:
    _expect_final(connection_id, job, deps)
    try:
        # To the host that holds the lecture (edge/affinity.py), else the balancer.
        post_routed(deps, lecture_id, "/v1/queries", job)
    except AgentCoreTimeout as exc:
        _timed_out(job, client_request_id, connection_id, deps, exc)
        return None
    except (AgentCoreBusy, AgentCoreUnavailable, AgentCoreRejected) as exc:
        # Refused, so never accepted: the edge answers the client (or parks the query for a
        # starting host, which sets its own deadline), and the hand-off's deadline goes.
        _withdraw_final(connection_id, job, deps)
        if isinstance(exc, AgentCoreUnavailable) and deps.settings.fleet_group:
            log.warning("query %s: %s", job["requestId"], exc)
            return _warm(job, client_request_id, connection_id, deps)
        raise _refusal(exc, job, client_request_id) from None
    # Accepted: AgentCore streams transcript/answerDelta/audio/answer to the connection.
    return None


def _refusal(exc: Exception, job: dict[str, Any], client_request_id: str | None) -> ContractError:
    """What the client hears when AgentCore refused the hand-off."""
    if isinstance(exc, AgentCoreBusy):
        return ContractError(
            ErrorCode.BUSY, "the model is at capacity; retry in a few seconds", client_request_id
        )
    if isinstance(exc, AgentCoreUnavailable):
        log.warning("query %s: %s", job["requestId"], exc)
        return ContractError(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            "the query service (AgentCore) cannot be reached; retry shortly",
            client_request_id,
        )
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s: query %s refused: %s", error_id, job["requestId"], exc)
    return ContractError(
        ErrorCode.INTERNAL, f"the query was refused internally; reference {error_id}", client_request_id
    )


def _timed_out(
    job: dict[str, Any], client_request_id: str | None, connection_id: str, deps: EdgeDeps, exc: Exception
) -> None:
    # AgentCore may have accepted the job all the same: the edge sends the final only if it wins
    # the claim (docs/interfaces.md, "One final message per question").
    log.warning("query %s: %s", job["requestId"], exc)
    if not _edge_claims_final(connection_id, job, deps):
        log.info("query %s: AgentCore took it after all; the edge sends nothing", job["requestId"])
        return None
    raise ContractError(
        ErrorCode.UPSTREAM_UNAVAILABLE,
        "the query service (AgentCore) did not answer in time; retry shortly",
        client_request_id,
    ) from None


def _expect_final(connection_id: str, job: dict[str, Any], deps: EdgeDeps) -> None:
    """final_claim.expect before AgentCore can accept the query. A failed write is logged and the
    query handed over all the same: AgentCore's claim records a deadline too."""
    due = final_claim.deadline(deps.store, deps.platform, job["owner"], job["requestId"])
    try:
        final_claim.expect(deps.store, connection_id, _claim_key(job), due)
    except Exception:
        log.exception("query %s: recording the answer deadline failed; handing over anyway", job["requestId"])


def _claim_key(job: dict[str, Any]) -> str:
    """The job's key in the final-claim protocol (and its job slot's)."""
    return final_claim.key(job["requestId"], job["receivedAtMs"])


def _withdraw_final(connection_id: str, job: dict[str, Any], deps: EdgeDeps) -> None:
    try:
        final_claim.withdraw(deps.store, connection_id, _claim_key(job))
    except Exception:
        # Left behind, the sweeper would send a second error for this query later.
        log.exception("query %s: the answer deadline could not be withdrawn", job["requestId"])


def _warm(
    job: dict[str, Any], client_request_id: str | None, connection_id: str, deps: EdgeDeps
) -> Warming | None:
    """No healthy host: start one and park the question for the sweeper (edge/warming.py)."""
    group = str(deps.settings.fleet_group)
    try:
        startable = warming.start_one(deps.autoscaling_client(), group, deps.ceilings.admit_warm_start)
    except ServiceLimit as exc:
        raise ContractError(ErrorCode.SERVICE_LIMIT, exc.message, client_request_id) from None
    except Exception:
        log.exception("query %s: the fleet %s could not be started", job["requestId"], group)
        startable = False
    if not startable:
        raise ContractError(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            "no answering server is running and none can be started now; retry later",
            client_request_id,
        )
    estimate, bound = warming.estimate_seconds(deps.platform), warming.bound_seconds(deps.platform)
    key = _claim_key(job)
    if not warming.park(deps.store, connection_id, key, job, deps.store.now() + bound):
        deps.quotas.finish_job(str(job["owner"]), key)
        return None  # the client disconnected meanwhile: nobody to tell
    return Warming(
        requestId=job["requestId"],
        estimatedSeconds=estimate,
        waitSeconds=bound,
        message=f"starting a server, about {estimate} s; the answer follows when it is ready",
    )


def _edge_claims_final(connection_id: str, job: dict[str, Any], deps: EdgeDeps) -> bool:
    """True when the edge now owns the query's final message (also when the claim itself fails:
    better a possible second final than none at all)."""
    try:
        return final_claim.claim(deps.store, connection_id, _claim_key(job), "edge")
    except Exception:
        log.exception("query %s: the final-message claim failed; answering anyway", job["requestId"])
        _withdraw_final(connection_id, job, deps)  # else the sweeper would answer it a second time
        return True


def _owned(
    action: Callable[[Any, str, str, EdgeDeps], ServerModel | None],
) -> Callable[[Any, Caller, EdgeDeps], ServerModel | None]:
    """An action of history.py or interrupt.py, which take (message, owner, connection, deps)."""
    return lambda msg, caller, deps: action(msg, caller.owner, caller.connection_id, deps)


_ACTIONS: dict[type, Callable[[Any, Caller, EdgeDeps], ServerModel | None]] = {
    CreateUpload: _create_upload,
    GetLecture: _get_lecture,
    StartSession: _start_session,
    EndSession: _end_session,
    Query: _query,
    DeleteLecture: _delete_lecture,
    Cancel: _owned(cancel_query),
    ListLectures: _owned(list_lectures),
    GetSession: _owned(get_session),
    GetLectureAudio: _owned(get_lecture_audio),
}
