"""The sweeper's schedule on the local stack: what EventBridge does in AWS (a rule every
`sweeper.interval_seconds` invoking the sweeper Lambda), done by a timer thread, so a lecture left
`transcribing` by a dead AgentCore resumes locally as it would in the cloud."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from synapscribe_local.gateway import LambdaContext

log = logging.getLogger("synapscribe_local.sweeper")


class SweepTimer:
    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], interval_seconds: float) -> None:
        self.handler = handler
        self.interval_seconds = interval_seconds
        self.runs = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        # The first run after one interval, as a scheduled rule's first invocation.
        while not self._stop.wait(self.interval_seconds):
            self.run_once()

    def run_once(self) -> Any:
        """One invocation, as the schedule makes it (an EventBridge scheduled event)."""
        self.runs += 1
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        try:
            return self.handler(event, LambdaContext(function_name="sweeper", timeout_seconds=300))
        except Exception:
            self.failures += 1
            log.exception("the sweeper failed (it runs again in %.0f s)", self.interval_seconds)
            return None
