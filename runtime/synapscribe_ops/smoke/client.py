"""An asyncio client for the SynapScribe WebSocket API, shared by the smoke test and the
benchmarks.

It connects to a local stack (`?identity=`) or a deployed one (SigV4-signed `$connect` with
Cognito credentials, see `synapscribe_ops.smoke.aws_auth`), keeps every server message with its
arrival time and its check against the contract, lets callers wait for a message by type and
requestId, and uploads through the presigned POST the server hands out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError
from synapscribe.contract import (
    Answer,
    AnswerDelta,
    Audio,
    ErrorMessage,
    ServerMessage,
    Transcript,
    UploadUrl,
    Warming,
    parse_server_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

#: Types that belong to one query's stream.
STREAM_TYPES = ("warming", "transcript", "answerDelta", "audio", "answer", "error")


#: API Gateway takes at most 32 KB per WebSocket frame (128 KB per message): longer messages go
#: out as several frames. In characters, so that even 4-byte UTF-8 stays under 32 KB.
FRAGMENT_CHARS = 8 * 1024


def fragments(frame: str | bytes) -> list[str] | list[bytes]:
    """`frame` cut into pieces of at most FRAGMENT_CHARS characters (or bytes)."""
    return [frame[i : i + FRAGMENT_CHARS] for i in range(0, len(frame), FRAGMENT_CHARS)]  # type: ignore[return-value]


class ClientError(RuntimeError):
    """The connection failed or an expected message did not come."""


@dataclass
class Received:
    """One frame from the server."""

    at: float  # time.monotonic() on arrival
    raw: str | bytes
    data: dict[str, Any] | None = None  # the JSON object, when it is one
    message: ServerMessage | None = None  # the frame, checked against the contract
    problem: str | None = None  # why it is not a contract message

    @property
    def type(self) -> str | None:
        return str(self.data.get("type")) if self.data and "type" in self.data else None

    @property
    def request_id(self) -> str | None:
        rid = self.data.get("requestId") if self.data else None
        return rid if isinstance(rid, str) else None


def check_frame(raw: str | bytes, at: float) -> Received:
    received = Received(at=at, raw=raw)
    if isinstance(raw, bytes):
        received.problem = "binary frame (the contract sends JSON text frames)"
        return received
    try:
        data = json.loads(raw)
    except ValueError:
        received.problem = "not JSON"
        return received
    if not isinstance(data, dict):
        received.problem = f"not a JSON object ({type(data).__name__})"
        return received
    received.data = data
    try:
        received.message = parse_server_message(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        received.problem = f"not a contract message: {errors}"
    return received


def local_url(base: str, identity: str | None) -> str:
    """The local stack's URL with the `identity` query parameter set."""
    if identity is None:
        return base
    parts = urlsplit(base)
    query = "&".join(q for q in [parts.query, urlencode({"identity": identity})] if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, parts.fragment))


@dataclass
class QueryResult:
    """One query's stream, in arrival order, with client-side timings (ms from sending)."""

    request_id: str
    sent_at: float
    messages: list[Received] = field(default_factory=list)
    timed_out: bool = False

    @property
    def final(self) -> Received | None:
        last = self.messages[-1] if self.messages else None
        return last if last is not None and last.type in ("answer", "error") else None

    @property
    def answer(self) -> Answer | None:
        final = self.final
        return final.message if final is not None and isinstance(final.message, Answer) else None

    @property
    def error(self) -> ErrorMessage | None:
        final = self.final
        return final.message if final is not None and isinstance(final.message, ErrorMessage) else None

    @property
    def transcript(self) -> str | None:
        for m in self.messages:
            if isinstance(m.message, Transcript):
                return m.message.text
        return None

    @property
    def delta_text(self) -> str:
        return "".join(m.message.text for m in self.messages if isinstance(m.message, AnswerDelta))

    @property
    def audio_urls(self) -> list[str]:
        return [m.message.url for m in self.messages if isinstance(m.message, Audio)]

    def _first_ms(self, kind: str) -> float | None:
        for m in self.messages:
            if m.type == kind:
                return (m.at - self.sent_at) * 1000
        return None

    def timings(self) -> dict[str, float | None]:
        final = self.final
        return {
            "transcriptMs": self._first_ms("transcript"),
            "firstDeltaMs": self._first_ms("answerDelta"),
            "firstAudioMs": self._first_ms("audio"),
            "totalMs": (final.at - self.sent_at) * 1000 if final is not None else None,
        }


class StackClient:
    """One WebSocket connection. Use `await StackClient.connect(...)` and `await client.close()`."""

    def __init__(self, ws: ClientConnection, label: str = "client") -> None:
        self.ws = ws
        self.label = label
        self.history: list[Received] = []
        self.sent: list[tuple[float, str | bytes]] = []
        self._inbox: list[Received] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.closed_reason: str | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        identity: str | None = None,
        headers: Mapping[str, str] | None = None,
        open_timeout: float = 10.0,
        label: str = "client",
    ) -> StackClient:
        """Open a connection. `identity` adds the local stack's query parameter; `headers`
        carries a SigV4 signature for a deployed stack."""
        target = local_url(url, identity)
        try:
            ws = await connect(
                target,
                additional_headers=dict(headers or {}),
                open_timeout=open_timeout,
                max_size=None,
                ping_interval=None,
            )
        except (OSError, TimeoutError) as exc:
            raise ClientError(f"cannot connect to {url}: {exc}") from None
        except Exception as exc:  # websockets' InvalidStatus/InvalidHandshake and friends
            raise ClientError(f"connection to {url} refused: {exc}") from None
        return cls(ws, label)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                received = check_frame(frame, time.monotonic())
                async with self._arrived:
                    self.history.append(received)
                    self._inbox.append(received)
                    self._arrived.notify_all()
        except ConnectionClosed as exc:
            self.closed_reason = f"closed by the server: code {exc.code} {exc.reason!r}".strip()
        finally:
            if self.closed_reason is None:
                self.closed_reason = "closed"
            async with self._arrived:
                self._arrived.notify_all()

    @property
    def is_open(self) -> bool:
        return not self._reader.done()

    async def send(self, message: Mapping[str, Any] | str | bytes) -> float:
        """Send a JSON object (or a raw text/binary frame, for hostile tests); returns the send time."""
        frame: str | bytes = (
            json.dumps(message, separators=(",", ":")) if isinstance(message, Mapping) else message
        )
        sent_at = time.monotonic()
        try:
            await self.ws.send(fragments(frame) if len(frame) > FRAGMENT_CHARS else frame)
        except ConnectionClosed as exc:
            raise ClientError(f"{self.label}: connection closed ({exc})") from None
        self.sent.append((sent_at, frame))
        return sent_at

    async def wait_for(
        self, predicate: Callable[[Received], bool], within: float, what: str = "a message"
    ) -> Received:
        """The first unconsumed message matching `predicate` (it is consumed)."""
        deadline = time.monotonic() + within
        async with self._arrived:
            while True:
                for i, received in enumerate(self._inbox):
                    if predicate(received):
                        return self._inbox.pop(i)
                if self._reader.done():
                    raise ClientError(f"{self.label}: {self.closed_reason} while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClientError(f"{self.label}: no {what} within {within:g} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    async def wait_type(
        self,
        *types: str,
        request_id: str | None = None,
        within: float = 10.0,
        where: Callable[[Received], bool] | None = None,
    ) -> Received:
        def match(r: Received) -> bool:
            return (
                r.type in types
                and (request_id is None or r.request_id == request_id)
                and (where is None or where(r))
            )

        what = "/".join(types) + (f" for {request_id}" if request_id else "")
        return await self.wait_for(match, within, what)

    async def request(self, message: Mapping[str, Any], expect: str, within: float = 10.0) -> Received:
        """Send `message`; the next `expect` or `error` message (with its requestId, if given)."""
        await self.send(message)
        rid = message.get("requestId")
        return await self.wait_type(
            expect, "error", request_id=rid if isinstance(rid, str) else None, within=within
        )

    async def query(self, session_id: str, *, within: float = 60.0, **fields: Any) -> QueryResult:
        """Send a `query` and collect its whole stream up to its `answer` or `error`."""
        request_id = fields.pop("requestId", None) or f"q-{uuid.uuid4().hex[:12]}"
        sent_at = await self.send(
            {"action": "query", "sessionId": session_id, "requestId": request_id, **fields}
        )
        result = QueryResult(request_id=request_id, sent_at=sent_at)
        deadline = sent_at + within
        while True:
            try:
                received = await self.wait_type(
                    *STREAM_TYPES, request_id=request_id, within=max(0.0, deadline - time.monotonic())
                )
            except ClientError:
                result.timed_out = True
                return result
            result.messages.append(received)
            if received.type in ("answer", "error"):
                return result
            if isinstance(received.message, Warming):
                # No server was running: the answer may take the start-up, up to the stated bound.
                deadline = max(deadline, time.monotonic() + received.message.waitSeconds + 30)

    async def upload(
        self, upload: UploadUrl, data: bytes, filename: str, content_type: str, within: float = 120.0
    ) -> httpx.Response:
        """POST `data` to the presigned URL as multipart form data (the fields, then `file`)."""
        async with httpx.AsyncClient(timeout=within) as http:
            return await http.post(
                upload.url, data=upload.fields, files={"file": (filename, data, content_type)}
            )

    def unconsumed(self) -> list[Received]:
        return list(self._inbox)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader

    async def __aenter__(self) -> StackClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
