"""The host's and the engine's summary lines reach the controller under pytest-xdist."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from worker_summary import KEY, from_workers, hand_to_controller


def test_a_worker_hands_its_lines_over_and_a_plain_run_keeps_them() -> None:
    worker = SimpleNamespace(workeroutput={})
    hand_to_controller(cast(pytest.Config, worker), ["host verification time: total 138.0 s"])
    hand_to_controller(cast(pytest.Config, worker), [])
    assert worker.workeroutput == {KEY: ["host verification time: total 138.0 s"]}
    plain = SimpleNamespace()  # no workeroutput: not a worker, it prints its own summary
    hand_to_controller(cast(pytest.Config, plain), ["engine tests: server start 60.0 s"])
    assert not hasattr(plain, "workeroutput")


def test_the_controller_prints_every_workers_lines_once_in_order() -> None:
    outputs: list[dict[str, Any]] = [
        {KEY: ["engine tests: server start 60.0 s", "engine inputs built in the background: venv"]},
        {"exitstatus": 0},
        {KEY: ["engine inputs built in the background: venv", "host verification time: total 138.0 s"]},
    ]
    assert from_workers(outputs) == [
        "engine tests: server start 60.0 s",
        "engine inputs built in the background: venv",
        "host verification time: total 138.0 s",
    ]
