"""The request bodies AgentCore accepts (docs/interfaces.md, AgentCore HTTP API)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synapscribe.contract import ID_PATTERN, IDENTITY_RE, REQUEST_ID_PATTERN


class QueryJob(BaseModel):
    """One query, as the edge forwards it: the client's `query` plus who asked and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connectionId: str = Field(min_length=1, max_length=128)
    owner: str = Field(pattern=IDENTITY_RE.pattern)
    sessionId: str = Field(pattern=ID_PATTERN)
    requestId: str = Field(pattern=REQUEST_ID_PATTERN)
    text: str | None = Field(default=None, min_length=1, max_length=4000)
    audio: str | None = Field(default=None, min_length=1)
    queryKey: str | None = Field(default=None, min_length=1, max_length=512)
    voice: bool = True
    receivedAtMs: int = Field(gt=0)
    #: The edge's id for this question, in every log line of it (default: requestId).
    correlationId: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:/-]{1,128}$")

    @model_validator(mode="after")
    def _exactly_one_input(self) -> QueryJob:
        given = [n for n in ("text", "audio", "queryKey") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of text, audio, queryKey is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class TranscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connectionId: str | None = Field(default=None, min_length=1, max_length=128)


class CancelJob(BaseModel):
    """The contract's `cancel`, as the edge forwards it: whose query to stop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(pattern=IDENTITY_RE.pattern)
    requestId: str = Field(pattern=REQUEST_ID_PATTERN)
