"""Parsing a client's frame: strict JSON, API Gateway's route selection, and the checks that turn
one frame into a typed action or a `ContractError` carrying the contract's code."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pydantic import ValidationError

from synapscribe.contract.actions import (
    ACTIONS,
    CLIENT_ADAPTER,
    REQUEST_ID_PATTERN,
    ClientMessage,
    CreateUpload,
    Query,
)
from synapscribe.contract.messages import SERVER_ADAPTER, ErrorCode, ErrorMessage
from synapscribe.platform import PlatformConfig, load_platform


class ContractError(Exception):
    """A request the contract answers with an `error` message."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message, requestId=self.request_id)


class StrictJsonError(ValueError):
    """Valid to Python's parser, not JSON: a `NaN`/`Infinity` constant or a key given twice."""


def _refuse_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJsonError(f"key {key[:40]!r} appears twice in one object")
        obj[key] = value
    return obj


def strict_json(text: str | bytes) -> Any:
    """RFC 8259 JSON only: no `NaN`/`Infinity` and no key twice in one object (Python's parser
    takes both, and a message could then mean one thing to API Gateway's route selection and
    another here). ValueError says what is wrong."""
    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def select_route(frame: str | bytes, routes: frozenset[str] | tuple[str, ...] = ACTIONS) -> str:
    """API Gateway's route selection on `$request.body.action`: the action's route, or
    `$default` for anything that is not a JSON object naming one (the local gateway and tests)."""
    try:
        data = strict_json(frame)
    except (ValueError, RecursionError):
        return "$default"
    action = data.get("action") if isinstance(data, dict) else None
    return action if isinstance(action, str) and action in routes else "$default"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p not in ACTIONS]
        field = ".".join(loc)
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts)


def _json_object(frame: str) -> dict[str, Any]:
    try:
        data = strict_json(frame)
    except StrictJsonError as exc:
        raise ContractError(ErrorCode.BAD_REQUEST, f"message is not valid JSON: {exc}") from None
    except (ValueError, RecursionError):
        raise ContractError(ErrorCode.BAD_REQUEST, "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ContractError(
            ErrorCode.BAD_REQUEST, f"message must be a JSON object, not {type(data).__name__}"
        )
    return data


def parse_client_message(frame: str | bytes, platform: PlatformConfig | None = None) -> ClientMessage:
    """Validate one WebSocket frame from a client.

    Raises ContractError with the contract's code: bad_request, unknown_action, too_large or
    unsupported_media. Ownership and existence (not_found, lecture_not_ready) are the handler's.
    """
    platform = platform or load_platform()
    limits = platform.limits
    size = len(frame.encode("utf-8") if isinstance(frame, str) else frame)
    if size > limits.message_max_bytes:
        raise ContractError(
            ErrorCode.TOO_LARGE, f"message is {size} bytes; the limit is {limits.message_max_bytes} bytes"
        )
    if isinstance(frame, bytes):
        raise ContractError(ErrorCode.BAD_REQUEST, "binary frames are not accepted: send JSON text frames")
    data = _json_object(frame)
    raw_request_id = data.get("requestId")
    request_id = (
        raw_request_id
        if isinstance(raw_request_id, str) and re.fullmatch(REQUEST_ID_PATTERN, raw_request_id)
        else None
    )
    action = data.get("action")
    if action is None:
        raise ContractError(ErrorCode.BAD_REQUEST, "action: field required", request_id)
    if not isinstance(action, str):
        raise ContractError(ErrorCode.BAD_REQUEST, "action: must be a string", request_id)
    if action not in ACTIONS:
        shown = action if len(action) <= 40 else action[:40] + "…"
        raise ContractError(
            ErrorCode.UNKNOWN_ACTION,
            f"unknown action {shown!r}; expected one of {', '.join(ACTIONS)}",
            request_id,
        )
    try:
        message = CLIENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ContractError(ErrorCode.BAD_REQUEST, _describe(exc), request_id) from None

    if isinstance(message, CreateUpload):
        if message.contentType not in limits.accepted_content_types:
            raise ContractError(
                ErrorCode.UNSUPPORTED_MEDIA,
                f"contentType {message.contentType[:100]!r} is not accepted; use one of "
                + ", ".join(sorted(limits.accepted_content_types)),
            )
        cap = limits.lecture_max_bytes if message.kind == "lecture" else limits.query_max_bytes
        if message.sizeBytes > cap:
            raise ContractError(
                ErrorCode.TOO_LARGE,
                f"a {message.kind} upload may be at most {cap} bytes ({cap / 1_048_576:g} MB); "
                f"sizeBytes is {message.sizeBytes}",
            )
    elif isinstance(message, Query) and message.audio is not None:
        try:
            clip = base64.b64decode(message.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ContractError(ErrorCode.BAD_REQUEST, "audio: not valid base64", request_id) from None
        if len(clip) > limits.inline_audio_max_bytes:
            raise ContractError(
                ErrorCode.TOO_LARGE,
                f"inline audio is {len(clip)} bytes decoded; the limit is {limits.inline_audio_max_bytes} "
                "bytes: upload longer clips with createUpload kind 'query' and send queryKey",
                request_id,
            )
    return message


def client_json_schema() -> dict[str, Any]:
    """JSON Schema of every message, both directions."""
    return {
        "clientToServer": CLIENT_ADAPTER.json_schema(),
        "serverToClient": SERVER_ADAPTER.json_schema(),
    }
