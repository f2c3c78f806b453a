"""Admission control: at most N requests in flight to vLLM, the rest wait a bounded time.

Waiters are served by priority, then arrival. Answers go first: when a burst of voice questions
fills every slot, a freed slot serves a waiting answer (the long request, whose end decides when
the query is done) before a waiting transcription; this keeps a burst's total time at the
slot-seconds bound instead of running the bursts' transcriptions and answers in two waves.

Strict priority starves the lower classes under a long overload: a transcription waits while newer
answers keep arriving, until the queue timeout makes its question `busy`. So priority ages: a
waiter that has waited `aging` seconds (platform.yaml agentcore.admission_aging_seconds) is served
next regardless of class, oldest first. `aging` = infinity is strict answers-first, 0 is first come
first served. `WaitQueue` is that ordering, shared with `synapscribe simulate` so the simulator
cannot disagree with AgentCore.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from synapscribe.agentcore import correlation

#: Priorities (lower first).
ANSWER = 0
TRANSCRIBE = 1
LECTURE = 2


T = TypeVar("T")


class BusyError(Exception):
    """No slot became free within the queue timeout."""


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    enqueued: float
    taken: bool = False


class WaitQueue(Generic[T]):
    """Who a freed slot serves next: priority then arrival, but a waiter aged `aging` s goes first.

    Waiters that left (timed out, cancelled) stay until they reach the front of either order and
    are skipped there (`live` says which are still waiting), so every operation is O(log n).
    """

    def __init__(self, aging: float = math.inf) -> None:
        if not aging >= 0:
            raise ValueError("aging must be at least 0 (0: first come first served, inf: strict priority)")
        self.aging = aging
        self._by_priority: list[tuple[int, int, _Entry[T]]] = []
        self._by_arrival: deque[_Entry[T]] = deque()
        self._order = itertools.count()

    def push(self, item: T, priority: int, now: float) -> None:
        entry = _Entry(item, now)
        heapq.heappush(self._by_priority, (priority, next(self._order), entry))
        self._by_arrival.append(entry)

    def pop(self, now: float, live: Callable[[T], bool]) -> T | None:
        """The next waiter to serve (removed), or None when nobody live is waiting."""
        arrival = self._by_arrival
        while arrival and (arrival[0].taken or not live(arrival[0].item)):
            arrival.popleft()
        aged = bool(arrival) and now - arrival[0].enqueued >= self.aging
        entry = arrival.popleft() if aged else self._pop_by_priority(live)
        if entry is None:
            return None
        entry.taken = True
        return entry.item

    def _pop_by_priority(self, live: Callable[[T], bool]) -> _Entry[T] | None:
        while self._by_priority:
            _, _, entry = heapq.heappop(self._by_priority)
            if not entry.taken and live(entry.item):
                return entry
        return None

    def count(self, live: Callable[[T], bool]) -> int:
        return sum(1 for e in self._by_arrival if not e.taken and live(e.item))


class Admission:
    def __init__(self, limit: int, timeout: float, aging: float = math.inf) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.limit = limit
        self.timeout = timeout
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: WaitQueue[asyncio.Future[None]] = WaitQueue(aging)

    @property
    def aging(self) -> float:
        """Seconds after which a waiter is served next regardless of class."""
        return self._waiters.aging

    @property
    def waiting(self) -> int:
        return self._waiters.count(_pending)

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    async def acquire(self, priority: int = ANSWER, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if self.in_flight < self.limit and self.waiting == 0:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.push(future, priority, time.monotonic())
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
        while self.in_flight < self.limit:
            future = self._waiters.pop(time.monotonic(), _pending)
            if future is None:
                return
            self._take()
            future.set_result(None)

    @asynccontextmanager
    async def slot(self, priority: int = ANSWER, timeout: float | None = None) -> AsyncIterator[None]:  # noqa: ASYNC109
        await self.acquire(priority, timeout)
        try:
            yield
        finally:
            self.release()


def _pending(future: asyncio.Future[None]) -> bool:
    return not future.done()
