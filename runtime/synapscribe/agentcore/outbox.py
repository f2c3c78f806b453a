"""Messages to one connection, in order, with answer deltas paced (`Outbox`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.contract import AnswerDelta, Audio, ServerModel

log = logging.getLogger(__name__)

#: Answer pieces are pushed at most this often (the rest are joined): each push costs a call to
#: API Gateway (money, and a few ms of boto3 CPU); a tenth of a second still reads as streaming.
DELTA_INTERVAL_SECONDS = 0.1


class Outbox:
    """Messages to one connection, pushed in the order they are sent, by one task.

    Answer deltas are paced (at most one push per DELTA_INTERVAL_SECONDS; pieces that arrive in
    between, or pile up behind a slow push, are joined into one message). Anything else in the
    queue flushes the pending delta at once, so speech is never held back by the pacing.
    """

    _END = object()

    def __init__(self, aws: AwsIo, connection_id: str, spans: Spans) -> None:
        self.aws = aws
        self.connection_id = connection_id
        self.spans = spans
        self.gone = False
        self.first_audio_at: float | None = None  # epoch ms
        # What the client is sent (a stopped answer's final repeats it).
        self.streamed: list[str] = []
        self.spoken: list[str] = []
        self._queue: deque[Any] = deque()
        self._last_delta: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._send())

    def _put(self, item: Any) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    def send(self, message: ServerModel) -> None:
        if isinstance(message, AnswerDelta):
            self.streamed.append(message.text)
        elif isinstance(message, Audio):
            self.spoken.append(message.url)
        self._put(message)

    def abandon(self) -> None:
        """End without a final message (the query is not ours to answer)."""
        self._put(self._END)

    def finish_with(self, message: ServerModel) -> None:
        """The last message (answer or error)."""
        self._put(message)
        self._put(self._END)

    async def closed(self) -> None:
        await self._task

    async def drained(self) -> None:
        """Everything sent so far has been pushed (or the client is gone)."""
        await self._idle.wait()

    def _next(self) -> Any:
        item = self._queue.popleft()
        if not isinstance(item, AnswerDelta):
            return item
        parts = [item.text]
        while self._queue and isinstance(self._queue[0], AnswerDelta):
            parts.append(self._queue.popleft().text)
        return item if len(parts) == 1 else AnswerDelta(requestId=item.requestId, text="".join(parts))

    async def _pace_deltas(self) -> None:
        """Hold a delta until DELTA_INTERVAL after the previous one, unless something else waits."""
        if self._last_delta is None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_delta + DELTA_INTERVAL_SECONDS
        while (now := loop.time()) < due and all(isinstance(m, AnswerDelta) for m in self._queue):
            self._wake.clear()
            try:
                async with asyncio.timeout(due - now):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _send(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if isinstance(self._queue[0], AnswerDelta):
                await self._pace_deltas()
            message = self._next()
            if message is self._END:
                self._idle.set()
                return
            if self.gone:
                continue
            if isinstance(message, AnswerDelta):
                self._last_delta = asyncio.get_running_loop().time()
            if not await self.aws.push(self.connection_id, message, self.spans):
                self.gone = True
                log.info("connection %s is gone; dropping the rest", self.connection_id)
            elif isinstance(message, Audio) and self.first_audio_at is None:
                self.first_audio_at = time.time() * 1000
