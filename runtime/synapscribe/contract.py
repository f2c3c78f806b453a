"""The client WebSocket contract (shared/contract/websocket-protocol.md) as pydantic models.

This module is the one definition of the protocol: the Lambda handler, the local gateway,
AgentCore and the smoke test all parse and build messages with it, and `synapscribe contract
--schema` prints its JSON Schema. Field names are camelCase on the wire.

`parse_client_message` turns one raw WebSocket frame into a typed action or raises
`ContractError` carrying the contract's error code and a specific message; it never touches
stored state, so a bad message can change nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from synapscribe.platform import PlatformConfig, load_platform

# Ids the server hands out (uuid4 hex with a prefix); anything else cannot exist.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# Identities: Cognito identity ids ("region:uuid") or, locally, the `identity` query parameter.
IDENTITY_RE = re.compile(r"^[A-Za-z0-9:_.-]{1,128}$")


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_ACTION = "unknown_action"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    #: A `createUpload` contentType outside platform.yaml `limits.accepted_content_types`, or a
    #: recording (question audio, lecture) that is no audio in an accepted format or is damaged or
    #: cut short; the message names what the bytes are ("it is a text file") or what is wrong.
    UNSUPPORTED_MEDIA = "unsupported_media"
    LECTURE_NOT_READY = "lecture_not_ready"
    BUSY = "busy"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    INTERNAL = "internal"
    #: A per-identity quota (platform.yaml `quotas`) would be exceeded; the message names it and its limit.
    QUOTA_EXCEEDED = "quota_exceeded"
    #: Too many messages on this connection or from this address (platform.yaml `rates`).
    RATE_LIMITED = "rate_limited"


class ContractError(Exception):
    """A request the contract answers with an `error` message."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message, requestId=self.request_id)


# --------------------------------------------------------------------------- client to server


class _Action(BaseModel):
    # strict: "sizeBytes": "12" or "voice": 1 are ill-typed, not coerced. Unknown fields are
    # ignored so that newer clients keep working.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class CreateUpload(_Action):
    """Ask for an upload URL for a lecture or a voice question.

    Accepted audio, the same for lectures and question audio (inline `audio` or `queryKey`): MP3,
    M4A/MP4 (AAC or Opus; fragmented as Safari's and Chrome's MediaRecorder write it), AAC (ADTS),
    WAV, FLAC, Ogg (Opus, Vorbis, FLAC) and WebM (Opus, Vorbis; a browser's live recording with no
    duration in its header is measured from its last frames). The bytes decide the format, never the
    name or the content type (synapscribe.audio.formats.sniff). The model server is given MP3 or WAV
    as sent; AgentCore converts every other accepted format to MP3 once (ffmpeg), so a browser's
    recording reaches the engine in a format its soundfile decoder reads; a WebM or MP4 video's
    sound is used. Anything else (text, images, a video without sound, empty, damaged or cut-short
    files) is refused with `unsupported_media` and a reason that says which. `contentType` is a key
    of platform.yaml `limits.accepted_content_types` (`video/webm` and `video/mp4` included: file
    pickers name .webm and .mp4 files so); parameters are dropped (`audio/webm;codecs=opus`, a
    MediaRecorder blob's type, is `audio/webm`).
    """

    action: Literal["createUpload"]
    kind: Literal["lecture", "query"]
    filename: str = Field(min_length=1, max_length=255)
    contentType: str = Field(min_length=1, max_length=100)
    sizeBytes: int = Field(gt=0)

    @field_validator("contentType")
    @classmethod
    def _media_type_only(cls, value: str) -> str:
        return value.split(";", 1)[0].strip().lower()


class GetLecture(_Action):
    action: Literal["getLecture"]
    lectureId: str = Field(pattern=ID_PATTERN)


class StartSession(_Action):
    action: Literal["startSession"]
    lectureId: str = Field(pattern=ID_PATTERN)


class Query(_Action):
    """A question: typed `text`, or audio inline (`audio`, base64) or uploaded (`queryKey`), in any
    format `CreateUpload` accepts."""

    action: Literal["query"]
    sessionId: str = Field(pattern=ID_PATTERN)
    requestId: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    text: str | None = Field(default=None, min_length=1, max_length=4000)
    audio: str | None = Field(default=None, min_length=1)
    queryKey: str | None = Field(default=None, min_length=1, max_length=512)
    voice: bool = True

    @model_validator(mode="after")
    def _exactly_one_input(self) -> Query:
        given = [name for name in ("text", "audio", "queryKey") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of text, audio, queryKey is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def audio_bytes(self) -> bytes | None:
        """The inline clip, decoded (parse_client_message has already checked it)."""
        return base64.b64decode(self.audio, validate=True) if self.audio is not None else None


class EndSession(_Action):
    action: Literal["endSession"]
    sessionId: str = Field(pattern=ID_PATTERN)


class DeleteLecture(_Action):
    action: Literal["deleteLecture"]
    lectureId: str = Field(pattern=ID_PATTERN)


ClientMessage = Annotated[
    CreateUpload | GetLecture | StartSession | Query | EndSession | DeleteLecture,
    Field(discriminator="action"),
]
_CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
ACTIONS: tuple[str, ...] = (
    "createUpload",
    "getLecture",
    "startSession",
    "query",
    "endSession",
    "deleteLecture",
)


# --------------------------------------------------------------------------- server to client


class ServerModel(BaseModel):
    """Base of every model the server sends: the messages of ServerMessage and their parts
    (Timings). Frozen, no unknown fields, and sent as `wire()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the client (absent optional fields are left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def wire_json(self) -> str:
        return json.dumps(self.wire(), separators=(",", ":"))


class UploadUrl(ServerModel):
    type: Literal["uploadUrl"] = "uploadUrl"
    uploadId: str
    key: str
    url: str
    fields: dict[str, str]
    expiresIn: int
    maxBytes: int


LectureStatus = Literal["pending", "transcribing", "ready", "rejected"]
ContextMode = Literal["audio", "transcript"]


class Lecture(ServerModel):
    type: Literal["lecture"] = "lecture"
    lectureId: str
    status: LectureStatus
    durationSeconds: float | None = None
    contextMode: ContextMode | None = None
    reason: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Lecture:
        """The `lecture` message for a stored lecture item (store.py): mode only when ready,
        reason only when rejected."""
        status = item["status"]
        return cls(
            lectureId=item["lectureId"],
            status=status,
            durationSeconds=item.get("durationSeconds"),
            contextMode=item.get("contextMode") if status == "ready" else None,
            reason=item.get("reason") if status == "rejected" else None,
        )


class Session(ServerModel):
    type: Literal["session"] = "session"
    sessionId: str
    lectureId: str
    contextMode: ContextMode
    expiresAt: int


class Transcript(ServerModel):
    """What was heard of a voice question, sent once per voice question as soon as it is ready:
    before, between or after the answer's `answerDelta` and `audio` messages (the answer does not
    wait for it), but always before the final `answer`. Never sent for a typed question, nor
    after an `error`."""

    type: Literal["transcript"] = "transcript"
    requestId: str
    text: str


class AnswerDelta(ServerModel):
    """The next piece of the answer's text, sent as soon as the model writes it (a voice
    question's `transcript` may come before, between or after the pieces)."""

    type: Literal["answerDelta"] = "answerDelta"
    requestId: str
    text: str


class Audio(ServerModel):
    """One spoken sentence of the answer (`seq` 0, 1, 2 ... in the answer's order), sent as soon
    as it is spoken, interleaved with `answerDelta` (and a voice question's `transcript`)."""

    type: Literal["audio"] = "audio"
    requestId: str
    seq: int = Field(ge=0)
    url: str
    text: str


class Timings(ServerModel):
    asrMs: float | None = None
    firstTokenMs: float | None = None
    firstAudioMs: float | None = None
    totalMs: float


class Answer(ServerModel):
    """The final message of an answered query (or `error` instead): after every `answerDelta`,
    `audio` and, for a voice question, its `transcript`."""

    type: Literal["answer"] = "answer"
    requestId: str
    text: str
    audio: list[str]
    ttsEngine: str | None = None
    timings: Timings


class SessionEnded(ServerModel):
    type: Literal["sessionEnded"] = "sessionEnded"
    sessionId: str


class LectureDeleted(ServerModel):
    """deleteLecture's answer: the lecture, its transcript, segments and sessions are gone."""

    type: Literal["lectureDeleted"] = "lectureDeleted"
    lectureId: str


class Warming(ServerModel):
    """No GPU host is serving: one is starting, and the query (`requestId`) waits for it. The
    answer follows once a host is ready, or an `error` (`upstream_unavailable`) when none is
    within `waitSeconds`. `estimatedSeconds` is the platform's host start-up figure."""

    type: Literal["warming"] = "warming"
    requestId: str
    estimatedSeconds: int = Field(ge=0)
    waitSeconds: int = Field(ge=0)
    message: str


class ErrorMessage(ServerModel):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    requestId: str | None = None


ServerMessage = Annotated[
    UploadUrl
    | Lecture
    | Session
    | Transcript
    | AnswerDelta
    | Audio
    | Answer
    | SessionEnded
    | LectureDeleted
    | Warming
    | ErrorMessage,
    Field(discriminator="type"),
]
SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def parse_server_message(data: str | bytes | dict[str, Any]) -> ServerMessage:
    """Check a message the server sent against the contract (used by the smoke test)."""
    if isinstance(data, dict):
        return SERVER_ADAPTER.validate_python(data)
    return SERVER_ADAPTER.validate_json(data)


# --------------------------------------------------------------------------- parsing


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p not in ACTIONS]
        field = ".".join(loc)
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts)


def parse_client_message(
    frame: str | bytes, platform: PlatformConfig | None = None
) -> CreateUpload | GetLecture | StartSession | Query | EndSession | DeleteLecture:
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
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        raise ContractError(ErrorCode.BAD_REQUEST, "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ContractError(
            ErrorCode.BAD_REQUEST, f"message must be a JSON object, not {type(data).__name__}"
        )
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
        message = _CLIENT_ADAPTER.validate_python(data)
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
        "clientToServer": _CLIENT_ADAPTER.json_schema(),
        "serverToClient": SERVER_ADAPTER.json_schema(),
    }
