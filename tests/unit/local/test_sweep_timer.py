"""The local stack's stand-in for the sweeper's schedule: invoked every interval with a scheduled
event, and a failing run neither stops the timer nor escapes it."""

from __future__ import annotations

import threading
from typing import Any

from synapscribe_local.sweep_timer import SweepTimer


def test_runs_every_interval_and_survives_a_failing_run() -> None:
    events: list[dict[str, Any]] = []
    three = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        assert context.get_remaining_time_in_millis() > 0
        if len(events) == 1:
            raise RuntimeError("DynamoDB throttled")
        if len(events) == 3:
            three.set()
        return {"resumed": []}

    timer = SweepTimer(handler, interval_seconds=0.05)
    timer.start()
    try:
        assert three.wait(5)
    finally:
        timer.stop()
    assert timer.failures == 1 and timer.runs >= 3
    assert events[0]["detail-type"] == "Scheduled Event"
    stopped_at = timer.runs
    threading.Event().wait(0.2)
    assert timer.runs == stopped_at  # stopped means stopped
