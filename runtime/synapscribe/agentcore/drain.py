"""Graceful drain on SIGTERM (spot interruption, scale-in, `systemctl stop`).

The first SIGTERM (or SIGINT) starts the drain: AgentCore keeps listening, but `/ready` answers
503 `draining` (the load balancer takes the instance out) and new queries and transcriptions get
503 (the edge tells the client `busy`). The queries and transcriptions already accepted run on
until none is left or `drain_timeout_seconds` has passed; then uvicorn shuts down (whatever is
still running is cancelled) and the process exits 0. A second signal ends the drain at once.

uvicorn re-raises the signal it caught after its shutdown, so a stopped AgentCore would die of
SIGTERM (exit -15, a "failed" unit); `DrainingServer` handles the signal itself and returns.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)

DRAINING_MESSAGE = "AgentCore is draining (shutting down): it accepts no new work; retry on another instance"


class Drain:
    """Whether AgentCore is draining, and whether its drain is over."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout <= 0:
            raise ValueError("the drain timeout must be positive")
        self.timeout = timeout
        self._clock = clock
        self.started_at: float | None = None
        self._in_flight: Callable[[], int] = lambda: 0
        #: run once when the drain begins, before anything else (the host leaves the registry)
        self.on_begin: list[Callable[[], Awaitable[None]]] = []

    def watch(self, in_flight: Callable[[], int]) -> None:
        """Count the work in flight with `in_flight()` (AgentCore's query and transcription tasks)."""
        self._in_flight = in_flight

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> bool:
        """Start draining; False when it had already started."""
        if self.started_at is not None:
            return False
        self.started_at = self._clock()
        return True

    def in_flight(self) -> int:
        return self._in_flight()

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else self._clock() - self.started_at

    def finished(self) -> bool:
        """Draining, and nothing is left in flight or the timeout has passed."""
        return self.draining and (self.in_flight() == 0 or self.elapsed() >= self.timeout)


class DrainingServer(uvicorn.Server):
    """uvicorn that drains on its first SIGTERM/SIGINT and exits normally (no re-raised signal)."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: set flags only (the loop's next tick logs and acts).
        if self.drain.begin():
            return
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self._announced:
            self._announced = True
            for leave in self.drain.on_begin:
                await leave()
            log.warning(
                "draining: refusing new work; %d quer(ies)/transcription(s) in flight, waiting up to %g s",
                self.drain.in_flight(),
                self.drain.timeout,
            )
        if self.drain.draining and not self.should_exit and self.drain.finished():
            left = self.drain.in_flight()
            if left:
                log.warning(
                    "drain timeout (%g s) passed with %d still in flight: cancelling them",
                    self.drain.timeout,
                    left,
                )
            else:
                log.warning("drained in %.1f s: nothing in flight, shutting down", self.drain.elapsed())
            self.should_exit = True
        return await super().on_tick(counter)
