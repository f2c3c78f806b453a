"""Stopping an answer (the contract's `cancel`): which queries run here, and stopping one.

A query's answer runs as one task (`until_stopped`); `Interrupts.stop` sets its query's event and
the task is cancelled: the model stream is closed (vLLM aborts a request whose client went away),
the sentences still being spoken are cancelled with the query's other tasks, and the answer's
model slot is given back by AnswerSlot's `finally`. The query then ends with its one final
message (an `answer` with `stopped`), through the usual claim/settle path.

A cancel can overtake its query (two Lambda invocations run side by side): a stop for a query not
(yet) running here is remembered for EARLY_STOP_SECONDS, at most EARLY_STOP_MAX of them, so the
query stops as soon as it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: How long a stop for a query that is not running here is kept for it.
EARLY_STOP_SECONDS = 30.0
#: At most this many such stops are kept (the oldest go first): a client cannot grow the table.
EARLY_STOP_MAX = 256


@dataclass
class Answering:
    """One query's answer on this host: `stop` is set to stop it, `ended` once its answer task
    is over (its model slot given back)."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Interrupts:
    """The queries answering on this host, by (owner, requestId): an owner stops only its own."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], Answering] = {}
        self._early: OrderedDict[tuple[str, str], float] = OrderedDict()

    def watch(self, owner: str, request_id: str) -> Answering:
        """The query's entry (its `stop` already set if its stop came first)."""
        key = (owner, request_id)
        entry = self._running.setdefault(key, Answering())
        until = self._early.pop(key, None)
        if until is not None and until >= time.monotonic():
            entry.stop.set()
        return entry

    def forget(self, owner: str, request_id: str) -> None:
        entry = self._running.pop((owner, request_id), None)
        if entry is not None:
            entry.ended.set()

    def stop(self, owner: str, request_id: str) -> Answering | None:
        """Stop the query; its entry when it is running here (else None, and the stop waits for
        it a while)."""
        key = (owner, request_id)
        entry = self._running.get(key)
        if entry is not None:
            entry.stop.set()
            return entry
        now = time.monotonic()
        self._early[key] = now + EARLY_STOP_SECONDS
        self._early.move_to_end(key)
        while len(self._early) > EARLY_STOP_MAX or (self._early and next(iter(self._early.values())) < now):
            self._early.popitem(last=False)
        return None

    def running(self) -> int:
        return len(self._running)


class Stopped(Exception):
    """The answer was stopped before it was complete."""


async def until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """`work`'s result, or Stopped once `stop` is set first (`work` is then cancelled and
    awaited, so whatever its `finally` gives back, such as the model slot, is back on return).
    An answer complete in the same instant as its stop is kept."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        stopping.cancel()
        raise
    stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Stopped
