"""The client WebSocket contract as pydantic models (rendered as docs/contract.md).

This package is the one definition of the protocol: the Lambda handler, the local gateway,
AgentCore and the smoke test all parse and build messages with it, and `synapscribe contract
--schema` prints its JSON Schema and `synapscribe contract --markdown` the client's document
(docs/contract.md: the models' docstrings are its words). Field names are camelCase on the wire.

`parse_client_message` turns one raw WebSocket frame into a typed action or raises
`ContractError` carrying the contract's error code and a specific message; it never touches
stored state, so a bad message can change nothing.

Its parts: `actions` (client to server), `messages` (server to client, with the error codes and
the order rules) and `parsing` (a frame to an action); importers use the names re-exported here.
"""

from __future__ import annotations

from synapscribe.contract.actions import (
    ACTIONS,
    CLIENT_ADAPTER,
    ID_PATTERN,
    IDENTITY_RE,
    REQUEST_ID_PATTERN,
    Cancel,
    ClientMessage,
    CreateUpload,
    DeleteLecture,
    EndSession,
    GetLecture,
    GetLectureAudio,
    GetSession,
    ListLectures,
    Query,
    StartSession,
)
from synapscribe.contract.messages import (
    ANSWER_DELTA_MAX_DELAY_SECONDS,
    ERROR_CODE_WHEN,
    ORDER_RULES,
    SERVER_ADAPTER,
    Answer,
    AnswerDelta,
    Audio,
    Citation,
    ContextMode,
    ErrorCode,
    ErrorMessage,
    Lecture,
    LectureAudio,
    LectureDeleted,
    Lectures,
    LectureStatus,
    LectureSummary,
    ServerMessage,
    ServerModel,
    Session,
    SessionEnded,
    SessionTurns,
    Timings,
    Transcript,
    Turn,
    UploadUrl,
    Warming,
    parse_server_message,
)
from synapscribe.contract.parsing import (
    ContractError,
    StrictJsonError,
    client_json_schema,
    parse_client_message,
    select_route,
    strict_json,
)

__all__ = [
    "ACTIONS",
    "ANSWER_DELTA_MAX_DELAY_SECONDS",
    "CLIENT_ADAPTER",
    "ERROR_CODE_WHEN",
    "IDENTITY_RE",
    "ID_PATTERN",
    "ORDER_RULES",
    "REQUEST_ID_PATTERN",
    "SERVER_ADAPTER",
    "Answer",
    "AnswerDelta",
    "Audio",
    "Cancel",
    "Citation",
    "ClientMessage",
    "ContextMode",
    "ContractError",
    "CreateUpload",
    "DeleteLecture",
    "EndSession",
    "ErrorCode",
    "ErrorMessage",
    "GetLecture",
    "GetLectureAudio",
    "GetSession",
    "Lecture",
    "LectureAudio",
    "LectureDeleted",
    "LectureStatus",
    "LectureSummary",
    "Lectures",
    "ListLectures",
    "Query",
    "ServerMessage",
    "ServerModel",
    "Session",
    "SessionEnded",
    "SessionTurns",
    "StartSession",
    "StrictJsonError",
    "Timings",
    "Transcript",
    "Turn",
    "UploadUrl",
    "Warming",
    "client_json_schema",
    "parse_client_message",
    "parse_server_message",
    "select_route",
    "strict_json",
]
