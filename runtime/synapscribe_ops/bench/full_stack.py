"""The full bench's view of the stack: its configuration, and the operations its scenarios are
made of (open a connection, upload, wait for a lecture to be ready, start a session, ask), each
raising CaseFailed with what went wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapscribe.contract import Lecture, Session, UploadUrl
from synapscribe_local import audiogen

from synapscribe_ops.bench.answer_words import STANDIN_PREFIX
from synapscribe_ops.bench.report import BenchResults
from synapscribe_ops.smoke.client import ClientError, QueryResult, Received, StackClient

Connector = Callable[[str], Awaitable[StackClient]]
#: How long to wait for a `lecture` push before asking with `getLecture`.
LECTURE_POLL_SECONDS = 10.0


@dataclass
class FullConfig:
    workdir: Path
    repeats: int = 3
    transcription_seconds: list[float] = field(default_factory=lambda: [30.0, 300.0, 1200.0])
    tts_words: list[int] = field(default_factory=lambda: [20, 50, 100])
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    lecture_seconds: float = 60.0
    metrics_url: str | None = None
    tts_url: str | None = None
    query_timeout: float = 120.0
    ready_timeout: float = 1800.0
    request_timeout: float = 30.0


class CaseFailed(Exception):
    pass


class StackOperations:
    """The stack as the scenarios use it, with every connection it opened (closed by `close`).
    An answer from the model stand-in marks the results as the stand-in's."""

    def __init__(self, connect: Connector, config: FullConfig, results: BenchResults, nonce: str) -> None:
        self.connect = connect
        self.config = config
        self.results = results
        self.nonce = nonce
        self.clients: list[StackClient] = []

    async def open(self, label: str) -> StackClient:
        client = await self.connect(label)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    def see_answer(self, result: QueryResult) -> None:
        answer = result.answer
        if answer is not None and answer.text.startswith(STANDIN_PREFIX):
            self.results.standin = True

    async def expect(self, client: StackClient, message: dict[str, Any], kind: str) -> Received:
        got = await client.request(message, kind, within=self.config.request_timeout)
        if got.type != kind:
            raise CaseFailed(f"expected {kind}, got {str(got.raw)[:200]}")
        return got

    async def upload(self, client: StackClient, kind: str, path: Path) -> UploadUrl:
        data = await asyncio.to_thread(path.read_bytes)
        got = await self.expect(
            client,
            {
                "action": "createUpload",
                "kind": kind,
                "filename": path.name,
                "contentType": "audio/mpeg",
                "sizeBytes": len(data),
            },
            "uploadUrl",
        )
        assert isinstance(got.message, UploadUrl)
        response = await client.upload(got.message, data, path.name, "audio/mpeg")
        if response.status_code not in (200, 201, 204):
            raise CaseFailed(f"presigned POST answered {response.status_code}: {response.text[:200]}")
        return got.message

    async def lecture_ready(self, client: StackClient, path: Path) -> tuple[str, float, Lecture]:
        """Upload a lecture; its id, the seconds from upload to `ready`, and the `lecture` message."""
        up = await self.upload(client, "lecture", path)
        uploaded = time.monotonic()
        deadline = uploaded + self.config.ready_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaseFailed(f"lecture {up.uploadId} not ready within {self.config.ready_timeout:g} s")
            try:
                got = await client.wait_type(
                    "lecture",
                    where=lambda r: bool(r.data and r.data.get("lectureId") == up.uploadId),
                    within=min(LECTURE_POLL_SECONDS, remaining),
                )
            except ClientError:
                if not client.is_open:
                    raise
                # No push yet: ask, as a client that reconnected would (the answer is a `lecture` too).
                await client.send({"action": "getLecture", "lectureId": up.uploadId})
                continue
            assert isinstance(got.message, Lecture)
            if got.message.status == "ready":
                return up.uploadId, got.at - uploaded, got.message
            if got.message.status == "rejected":
                raise CaseFailed(f"lecture rejected: {got.message.reason}")

    async def start_session(self, client: StackClient, lecture_id: str) -> str:
        got = await self.expect(client, {"action": "startSession", "lectureId": lecture_id}, "session")
        assert isinstance(got.message, Session)
        return got.message.sessionId

    async def ask(self, client: StackClient, session_id: str, **fields: Any) -> QueryResult:
        result = await client.query(session_id, within=self.config.query_timeout, **fields)
        self.see_answer(result)
        if result.timed_out:
            raise CaseFailed(f"no answer within {self.config.query_timeout:g} s")
        if result.error is not None:
            raise CaseFailed(f"error {result.error.code}: {result.error.message}")
        if result.answer is None:
            raise CaseFailed("no answer")
        return result

    async def lecture_file(self, seconds: float, tag: str) -> Path:
        """A generated lecture; `tag` makes its bytes unique (no cache of any kind can serve it)."""
        path = self.config.workdir / f"lecture-{tag}-{seconds:g}s.mp3"
        sentences = (*audiogen.DEFAULT_LECTURE, f"This recording is benchmark lecture {tag} {self.nonce}.")
        await asyncio.to_thread(audiogen.make_lecture, path, seconds / 60, "mp3", sentences=sentences)
        return path
