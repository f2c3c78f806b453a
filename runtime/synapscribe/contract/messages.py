"""Server to client: the messages the server sends, their error codes and the order they come in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


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


#: The longest an answer's text waits on the server before it is sent (`answerDelta`).
ANSWER_DELTA_MAX_DELAY_SECONDS = 0.5


class AnswerDelta(ServerModel):
    """The next piece of the answer's text (a voice question's `transcript` may come before,
    between or after the pieces). The model's pieces are joined into fewer messages: the answer's
    first piece is sent as soon as the model writes it, later text as soon as it completes a
    sentence (before that sentence's `audio`), and no text waits longer than 0.5 s
    (ANSWER_DELTA_MAX_DELAY_SECONDS) after the model wrote it."""

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
