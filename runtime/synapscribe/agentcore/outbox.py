"""Messages to one connection, in order, with the answer's text joined into fewer pushes (`Outbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.deltas import DeltaCoalescer
from synapscribe.contract import ANSWER_DELTA_MAX_DELAY_SECONDS, AnswerDelta, Audio, ServerModel

log = logging.getLogger(__name__)


class Outbox:
    """Messages to one connection, pushed in the order they are sent, by one task.

    The answer's text is joined into fewer `answerDelta` pushes (deltas.py: the first piece at
    once, then at each sentence's end, never later than the contract's bound). Text that is due
    goes before anything queued after it, so a sentence's text precedes its audio and all of the
    text precedes the final; text still held (the next sentence, not yet complete) does not delay
    an `audio` push (it would add a push's time before the audio).
    """

    _END = object()

    def __init__(
        self,
        aws: AwsIo,
        connection_id: str,
        spans: Spans,
        max_delay: float = ANSWER_DELTA_MAX_DELAY_SECONDS,
    ) -> None:
        self.aws = aws
        self.connection_id = connection_id
        self.spans = spans
        self.gone = False
        self.first_audio_at: float | None = None  # epoch ms
        # What the client is sent (a stopped answer's final repeats it).
        self.streamed: list[str] = []
        self.spoken: list[str] = []
        self._queue: deque[Any] = deque()
        self._text = DeltaCoalescer(max_delay, clock=asyncio.get_running_loop().time)
        self._text_of = ""  # the requestId of the held text
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
            self.send_text(message.requestId, message.text)
            return
        if isinstance(message, Audio):
            self.spoken.append(message.url)
        self._put(message)

    def send_text(self, request_id: str, text: str, ends_sentence: bool = False) -> None:
        """A piece of the answer's text (`ends_sentence`: it completes a sentence)."""
        if not text:
            return
        self.streamed.append(text)
        self._text_of = request_id
        self._text.add(text, ends_sentence)
        self._idle.clear()
        self._wake.set()

    def end_of_text(self) -> None:
        """The answer's text is complete: what is held goes at once."""
        self._text.end()
        self._wake.set()

    def abandon(self) -> None:
        """End without a final message (the query is not ours to answer)."""
        self._text.end()
        self._put(self._END)

    def finish_with(self, message: ServerModel) -> None:
        """The last message (answer or error), after all of the text."""
        self._text.end()
        self._put(message)
        self._put(self._END)

    async def closed(self) -> None:
        await self._task

    async def drained(self) -> None:
        """Everything sent so far has been pushed (or the client is gone)."""
        await self._idle.wait()

    def _held(self) -> AnswerDelta:
        return AnswerDelta(requestId=self._text_of, text=self._text.take())

    async def _send(self) -> None:
        while True:
            if self._text.ready():  # due text first: a sentence's text before its audio
                await self._push(self._held())
            elif self._queue:
                message = self._queue.popleft()
                if message is self._END:
                    self._idle.set()
                    return
                await self._push(message)
            else:
                await self._wait(self._text.due())

    async def _wait(self, due: float | None) -> None:
        """Until something more is sent, or the held text is due."""
        self._wake.clear()
        if due is None:
            self._idle.set()
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(due):
                await self._wake.wait()

    async def _push(self, message: ServerModel) -> None:
        if self.gone:
            return
        if not await self.aws.push(self.connection_id, message, self.spans):
            self.gone = True
            log.info("connection %s is gone; dropping the rest", self.connection_id)
        elif isinstance(message, Audio) and self.first_audio_at is None:
            self.first_audio_at = time.time() * 1000
