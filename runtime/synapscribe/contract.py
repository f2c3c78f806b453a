"""The client WebSocket contract as pydantic models (rendered as docs/contract.md).

This module is the one definition of the protocol: the Lambda handler, the local gateway,
AgentCore and the smoke test all parse and build messages with it, and `synapscribe contract
--schema` prints its JSON Schema and `synapscribe contract --markdown` the client's document
(docs/contract.md: the docstrings below are its words). Field names are camelCase on the wire.

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
from typing import Annotated, Any, ClassVar, Literal

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
    #: The whole service (every student together) reached one of today's ceilings, or the operator
    #: closed uploads or questions; nothing is stored.
    SERVICE_LIMIT = "service_limit"


#: When the server answers with each code (docs/contract.md's error table).
ERROR_CODE_WHEN: dict[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "not JSON (`NaN`, `Infinity` and a key given twice are not JSON), not an object, a binary "
    "frame, a missing or ill-typed field, more than one of `text`/`audio`/`queryKey`, a message that did not "
    "arrive on its action's route",
    ErrorCode.UNKNOWN_ACTION: "an `action` that is not one of the client actions",
    ErrorCode.NOT_FOUND: "an unknown, expired or another identity's lecture or session",
    ErrorCode.TOO_LARGE: "a message, inline clip, declared upload or question over its limit",
    ErrorCode.UNSUPPORTED_MEDIA: "a `createUpload` content type that is not accepted, or a recording (lecture or "
    "question audio) that is not audio in an accepted format or is damaged or cut short; the message says "
    "what the bytes are or what is wrong",
    ErrorCode.LECTURE_NOT_READY: "`startSession` on a lecture that is not `ready`",
    ErrorCode.BUSY: "the model is at capacity and the wait would be too long; retry later",
    ErrorCode.UPSTREAM_UNAVAILABLE: "the model or speech service cannot be reached, or the service answering went "
    "away; the message says which; asking again is expected to work",
    ErrorCode.INTERNAL: "anything else; the message carries an id to find it in the logs, never a stack trace",
    ErrorCode.QUOTA_EXCEEDED: "a per-identity quota (platform.yaml `quotas`) would be exceeded; the message names "
    "the quota and its limit; nothing is stored",
    ErrorCode.RATE_LIMITED: "too many messages on this connection or from this address (platform.yaml `rates`); "
    "the connection stays open",
    ErrorCode.SERVICE_LIMIT: "the service has reached today's limit (of uploads, bytes, lectures or questions, for "
    "everyone or for this address), or the operator has closed uploads or questions for now; try again "
    "tomorrow (or later); nothing is stored",
}


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
    # A string right under a field is its description (JSON Schema, docs/contract.md).
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, use_attribute_docstrings=True)
    #: The server messages that answer this action (docs/contract.md).
    answered_by: ClassVar[str] = ""


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

    answered_by = "`uploadUrl`"

    action: Literal["createUpload"]
    kind: Literal["lecture", "query"]
    """`lecture`: a recording to ask about; `query`: a spoken question too long to send inline."""
    filename: str = Field(min_length=1, max_length=255)
    """The file's name on the client (its extension is kept in the key)."""
    contentType: str = Field(min_length=1, max_length=100)
    """The recording's MIME type: one of the accepted content types (see limits)."""
    sizeBytes: int = Field(gt=0)
    """The file's size; over the kind's limit is `too_large`."""

    @field_validator("contentType")
    @classmethod
    def _media_type_only(cls, value: str) -> str:
        return value.split(";", 1)[0].strip().lower()


class GetLecture(_Action):
    """Ask for a lecture's status (for clients that reconnected; the status is also pushed)."""

    answered_by = "`lecture`"

    action: Literal["getLecture"]
    lectureId: str = Field(pattern=ID_PATTERN)
    """From `uploadUrl` (`uploadId`) of a lecture upload."""


class StartSession(_Action):
    """Start a question session on a `ready` lecture."""

    answered_by = "`session`"

    action: Literal["startSession"]
    lectureId: str = Field(pattern=ID_PATTERN)
    """A `ready` lecture of this identity; otherwise `lecture_not_ready` or `not_found`."""


class Query(_Action):
    """A question: typed `text`, or audio inline (`audio`, base64) or uploaded (`queryKey`), in any
    format `CreateUpload` accepts; exactly one of the three."""

    answered_by = "a stream: see the order rules"

    action: Literal["query"]
    sessionId: str = Field(pattern=ID_PATTERN)
    """From `session`."""
    requestId: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    """Chosen by the client and echoed by every message of the answer; without one the server picks one."""
    text: str | None = Field(default=None, min_length=1, max_length=4000)
    """A typed question."""
    audio: str | None = Field(default=None, min_length=1)
    """A short spoken question: base64 of the clip, at most `limits.inline_audio_max_bytes` decoded."""
    queryKey: str | None = Field(default=None, min_length=1, max_length=512)
    """The `key` of a finished `query` upload."""
    voice: bool = True
    """Speak the answer (`audio` messages); false: text only."""

    @model_validator(mode="after")
    def _exactly_one_input(self) -> Query:
        given = [name for name in ("text", "audio", "queryKey") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of text, audio, queryKey is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class EndSession(_Action):
    """End a session: its history is deleted."""

    answered_by = "`sessionEnded`"

    action: Literal["endSession"]
    sessionId: str = Field(pattern=ID_PATTERN)
    """From `session`."""


class DeleteLecture(_Action):
    """Delete a lecture: the recording, transcript, segments, its sessions and its item; its quota is
    given back."""

    answered_by = "`lectureDeleted`"

    action: Literal["deleteLecture"]
    lectureId: str = Field(pattern=ID_PATTERN)
    """A lecture of this identity, in any status."""


class Cancel(_Action):
    """Stop a query's answer (the student pressed Stop, or talk while it was answered): the model
    stops writing, no more sentences are spoken, and its model slot is freed at once. The query
    then ends with its one final message as usual: an `answer` with `stopped` true carrying the
    text sent so far (or, when it had already ended, nothing more: its final was sent). A stopped
    answer is not kept in the session's history."""

    answered_by = "the query's final `answer` (`stopped`: true); nothing when it had already ended"

    action: Literal["cancel"]
    sessionId: str = Field(pattern=ID_PATTERN)
    """The query's session (from `session`)."""
    requestId: str = Field(pattern=REQUEST_ID_PATTERN)
    """The `requestId` of the query to stop."""


class GetLectureAudio(_Action):
    """A short-lived link to the lecture's own recording (to play a citation from its time)."""

    answered_by = "`lectureAudio`"

    action: Literal["getLectureAudio"]
    lectureId: str = Field(pattern=ID_PATTERN)
    """A `ready` lecture of this identity."""


class ListLectures(_Action):
    """The caller's lectures (pending, transcribing and ready ones: at most the `lectures` quota),
    newest first, each with its newest session: what a page shows again after a reload."""

    answered_by = "`lectures`"

    action: Literal["listLectures"]


class GetSession(_Action):
    """A session's turns, oldest first (the caller's own session; the history's kept turns, at
    most platform.yaml `sessions.keep_turns`): to show a conversation again after a reload."""

    answered_by = "`sessionTurns`"

    action: Literal["getSession"]
    sessionId: str = Field(pattern=ID_PATTERN)
    """From `session` (or a lecture's `sessionId` in `lectures`)."""


ClientMessage = Annotated[
    CreateUpload
    | GetLecture
    | StartSession
    | Query
    | EndSession
    | DeleteLecture
    | Cancel
    | ListLectures
    | GetSession
    | GetLectureAudio,
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
    "cancel",
    "listLectures",
    "getSession",
    "getLectureAudio",
)


# --------------------------------------------------------------------------- server to client


class ServerModel(BaseModel):
    """Base of every model the server sends: the messages of ServerMessage and their parts
    (Timings). Frozen, no unknown fields, and sent as `wire()`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the client (absent optional fields are left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def wire_json(self) -> str:
        return json.dumps(self.wire(), separators=(",", ":"))


class UploadUrl(ServerModel):
    """Where and how to upload: an S3 presigned POST (multipart form data: `fields`, then `file`)."""

    type: Literal["uploadUrl"] = "uploadUrl"
    uploadId: str
    """The `lectureId` or `queryId` of the upload."""
    key: str
    """The object's key; a `query` upload's is the query's `queryKey`."""
    url: str
    """The POST's URL."""
    fields: dict[str, str]
    """Form fields to send before `file`, unchanged."""
    expiresIn: int
    """Seconds the POST stays valid (a minute: ask for a new one to upload again)."""
    maxBytes: int
    """The largest file the POST accepts: the declared `sizeBytes`."""


LectureStatus = Literal["pending", "transcribing", "ready", "rejected"]
ContextMode = Literal["audio", "transcript"]


class Lecture(ServerModel):
    """A lecture's status: pushed to the uploader's connection when validation (and, in transcript mode, transcription) finishes, and the answer to `getLecture`."""

    type: Literal["lecture"] = "lecture"
    lectureId: str
    """The lecture."""
    status: LectureStatus
    """`pending` (uploaded, not yet checked), `transcribing`, `ready` or `rejected`."""
    durationSeconds: float | None = None
    """The recording's length, when known."""
    contextMode: ContextMode | None = None
    """When ready: `audio` (the model hears the recording) or `transcript` (it reads a transcript)."""
    reason: str | None = None
    """When rejected: a sentence a person can act on (e.g. the longest length accepted)."""

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
    """A started session."""

    type: Literal["session"] = "session"
    sessionId: str
    """Send it with every `query`."""
    lectureId: str
    """The session's lecture."""
    contextMode: ContextMode
    """The lecture's mode."""
    expiresAt: int
    """Epoch seconds when the session ends unless used."""


class Transcript(ServerModel):
    """What was heard of a voice question, sent once per voice question as soon as it is ready:
    before, between or after the answer's `answerDelta` and `audio` messages (the answer does not
    wait for it), but always before the final `answer`. Never sent for a typed question, nor
    after an `error`."""

    type: Literal["transcript"] = "transcript"
    requestId: str
    """The query's `requestId` (or one the server chose)."""
    text: str
    """The question's words."""


class AnswerDelta(ServerModel):
    """The next piece of the answer's text, sent as soon as the model writes it (a voice
    question's `transcript` may come before, between or after the pieces)."""

    type: Literal["answerDelta"] = "answerDelta"
    requestId: str
    """The query's `requestId`."""
    text: str
    """Text to append to what came before."""


class Audio(ServerModel):
    """One spoken sentence of the answer (`seq` 0, 1, 2 ... in the answer's order), sent as soon
    as it is spoken, interleaved with `answerDelta` (and a voice question's `transcript`)."""

    type: Literal["audio"] = "audio"
    requestId: str
    """The query's `requestId`."""
    seq: int = Field(ge=0)
    """0, 1, 2 … in the order to play."""
    url: str
    """Presigned GET of an MP3 under `responses/`."""
    text: str
    """The sentence(s) it speaks."""


class Timings(ServerModel):
    """Milliseconds from the server's receipt of the query."""

    asrMs: float | None = None
    """Until the spoken question was transcribed (voice questions)."""
    firstTokenMs: float | None = None
    """Until the model's first word."""
    firstAudioMs: float | None = None
    """Until the first `audio` message."""
    totalMs: float
    """Until the answer."""


class Citation(ServerModel):
    """A passage of the lecture an answer comes from."""

    startSeconds: float = Field(ge=0)
    """Where the passage starts in the recording."""
    endSeconds: float = Field(gt=0)
    """Where it ends (after `startSeconds`, at most the lecture's length)."""


class Answer(ServerModel):
    """The final message of an answered query (or `error` instead): after every `answerDelta`,
    `audio` and, for a voice question, its `transcript`."""

    type: Literal["answer"] = "answer"
    requestId: str
    """The query's `requestId`."""
    text: str
    """The whole answer (the `answerDelta` texts joined)."""
    audio: list[str]
    """The `audio` messages' urls in order; empty when `voice` was false."""
    ttsEngine: str | None = None
    """The speech engine that spoke it."""
    timings: Timings
    """How long each step took."""
    citations: list[Citation] | None = None
    """Where in the lecture the answer comes from (the model cites the parts' times in audio mode
    and the segments' in transcript mode; the text marks each as `[from 01:00-02:00]`, which is
    not spoken). Empty: nothing in the lecture supports the answer. Play one with `getLectureAudio`."""
    stopped: bool | None = None
    """True when the student stopped the answer (`cancel`): `text` and `audio` are what was sent
    before it stopped; absent for a complete answer."""


class SessionEnded(ServerModel):
    """`endSession`'s answer."""

    type: Literal["sessionEnded"] = "sessionEnded"
    sessionId: str
    """The ended session."""


class LectureDeleted(ServerModel):
    """deleteLecture's answer: the lecture, its transcript, segments and sessions are gone."""

    type: Literal["lectureDeleted"] = "lectureDeleted"
    lectureId: str
    """The deleted lecture."""


class LectureSummary(ServerModel):
    """One lecture in `lectures`."""

    lectureId: str
    """The lecture."""
    status: LectureStatus
    """As in `lecture`."""
    filename: str | None = None
    """The file's name when it was uploaded."""
    durationSeconds: float | None = None
    """The recording's length, when known."""
    contextMode: ContextMode | None = None
    """When ready: `audio` or `transcript`."""
    createdAt: int | None = None
    """Epoch seconds of the upload."""
    sessionId: str | None = None
    """The lecture's newest live session, to reopen with `getSession` (absent when none)."""


class Lectures(ServerModel):
    """`listLectures`'s answer."""

    type: Literal["lectures"] = "lectures"
    lectures: list[LectureSummary]
    """Newest first."""


class Turn(ServerModel):
    """One answered question of a session."""

    requestId: str
    """The query's `requestId`."""
    question: str
    """The typed question, or what was heard of a spoken one."""
    answer: str
    """The answer's text."""
    voice: bool
    """True for a spoken question."""
    at: int
    """Epoch seconds when it was answered."""
    citations: list[Citation] | None = None
    """Where in the lecture the answer comes from, as its `answer` said (empty: nothing in the
    lecture supports it); absent for a turn kept before citations were."""


class SessionTurns(ServerModel):
    """`getSession`'s answer: the session and its turns, oldest first."""

    type: Literal["sessionTurns"] = "sessionTurns"
    sessionId: str
    """The session."""
    lectureId: str
    """Its lecture."""
    contextMode: ContextMode
    """The lecture's mode."""
    expiresAt: int
    """Epoch seconds when the session ends unless used."""
    turns: list[Turn]
    """Oldest first."""


class LectureAudio(ServerModel):
    """`getLectureAudio`'s answer."""

    type: Literal["lectureAudio"] = "lectureAudio"
    lectureId: str
    """The lecture."""
    url: str
    """Presigned GET of the lecturer's recording."""
    expiresIn: int
    """Seconds the link works (at most 300)."""


class Warming(ServerModel):
    """No GPU host is serving: one is starting, and the query (`requestId`) waits for it. The
    answer follows once a host is ready, or an `error` (`upstream_unavailable`) when none is
    within `waitSeconds`. `estimatedSeconds` is the platform's host start-up figure."""

    type: Literal["warming"] = "warming"
    requestId: str
    """The waiting query's `requestId`."""
    estimatedSeconds: int = Field(ge=0)
    """How long a host usually takes to start (platform.yaml `fleet.host_startup_seconds`)."""
    waitSeconds: int = Field(ge=0)
    """The longest the query waits for a host before `upstream_unavailable`."""
    message: str
    """A sentence for the person asking."""


class ErrorMessage(ServerModel):
    """A request the server did not carry out (see the error codes); the connection stays open."""

    type: Literal["error"] = "error"
    code: ErrorCode
    """One of the error codes."""
    message: str
    """A specific sentence naming what was wrong."""
    requestId: str | None = None
    """The request's `requestId`, when it had a valid one."""


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
    | Lectures
    | SessionTurns
    | LectureAudio
    | Warming
    | ErrorMessage,
    Field(discriminator="type"),
]
SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

#: The order rules of the server's messages (docs/contract.md); smoke/checks.py checks a query's.
ORDER_RULES: tuple[str, ...] = (
    "For one `query`: at most one `warming` (no GPU host was serving), before anything else of it; "
    "then `answerDelta` and `audio` messages interleaved as they are ready, with a voice question's "
    "one `transcript` before, between or after them (the answer does not wait for it; a typed "
    "question gets none); then exactly one final message: `answer`, after everything else, or "
    "`error`, after which nothing more of that query comes. A `cancel` does not add a message: the "
    "query's final is then an `answer` with `stopped` true.",
    "`audio` `seq` runs 0, 1, 2 … within one query; `answer.audio` lists their urls in that order, "
    "and the `answerDelta` texts add up to `answer.text`.",
    "`lecture` is pushed to the connection that created the upload as soon as validation (and, in "
    "transcript mode, transcription) finishes; `getLecture` is for clients that reconnected.",
    "A bad message is answered with one `error` (carrying its `requestId` when it had a valid one); "
    "it never closes the connection and never changes stored state.",
)


def parse_server_message(data: str | bytes | dict[str, Any]) -> ServerMessage:
    """Check a message the server sent against the contract (used by the smoke test)."""
    if isinstance(data, dict):
        return SERVER_ADAPTER.validate_python(data)
    return SERVER_ADAPTER.validate_json(data)


# --------------------------------------------------------------------------- parsing


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


def parse_client_message(
    frame: str | bytes, platform: PlatformConfig | None = None
) -> (
    CreateUpload
    | GetLecture
    | StartSession
    | Query
    | EndSession
    | DeleteLecture
    | Cancel
    | ListLectures
    | GetSession
    | GetLectureAudio
):
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
