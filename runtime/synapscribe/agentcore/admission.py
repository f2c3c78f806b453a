"""Admission control: at most N requests in flight to vLLM, the rest wait a bounded time.

Waiters are served by priority, then arrival. Answers go first: when a burst of voice questions
fills every slot, a freed slot serves a waiting answer (the long request, whose end decides when
the query is done) before a waiting transcription; this keeps a burst's total time at the
slot-seconds bound instead of running the bursts' transcriptions and answers in two waves.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from synapscribe.agentcore import correlation

#: Priorities (lower first).
ANSWER = 0
TRANSCRIBE = 1
LECTURE = 2


class BusyError(Exception):
    """No slot became free within the queue timeout."""


class Admission:
    def __init__(self, limit: int, timeout: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.limit = limit
        self.timeout = timeout
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    async def acquire(self, priority: int = ANSWER, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if self.in_flight < self.limit and self.waiting == 0:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        waited_from = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                await future
            correlation.add_queue_wait(time.perf_counter() - waited_from)
        except TimeoutError:
            correlation.add_queue_wait(time.perf_counter() - waited_from)
            if future.done() and not future.cancelled():
                self.release()  # granted in the same instant the wait ran out
            raise BusyError(
                f"all {self.limit} model slots stayed busy for {self.timeout if timeout is None else timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        while self._waiters and self.in_flight < self.limit:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._take()
                future.set_result(None)

    @asynccontextmanager
    async def slot(self, priority: int = ANSWER, timeout: float | None = None) -> AsyncIterator[None]:  # noqa: ASYNC109
        await self.acquire(priority, timeout)
        try:
            yield
        finally:
            self.release()
