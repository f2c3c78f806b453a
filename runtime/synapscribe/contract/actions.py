"""Client to server: the actions a client sends, one pydantic model each, and the ids they carry."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

# Ids the server hands out (uuid4 hex with a prefix); anything else cannot exist.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
# Identities: Cognito identity ids ("region:uuid") or, locally, the `identity` query parameter.
IDENTITY_RE = re.compile(r"^[A-Za-z0-9:_.-]{1,128}$")


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
CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
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
