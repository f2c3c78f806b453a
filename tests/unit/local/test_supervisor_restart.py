"""The local stack's supervisor restarts a child that failed, as the hosts' systemd units do
(Restart=on-failure, RestartPreventExitStatus=2 78, StartLimitBurst=5 in StartLimitIntervalSec=300),
and stops the stack otherwise. Real child processes, no mocks."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from synapscribe_local import supervisor as sup
from synapscribe_local.stack import _restart_or_report
from synapscribe_local.supervisor import Child, Supervisor


def start(tmp_path: Path, code: str, name: str = "svc") -> tuple[Supervisor, Child]:
    s = Supervisor(tmp_path)
    child = s.start(name, [sys.executable, "-c", code], "http://127.0.0.1:1/", dict(os.environ))
    return s, child


def finished(child: Child) -> int:
    assert child.process is not None
    return child.process.wait(timeout=20)


@pytest.mark.parametrize(("code", "restart"), [(0, False), (1, True), (2, False), (78, False), (3, True)])
def test_restart_on_failure_unless_retrying_cannot_help(tmp_path: Path, code: int, restart: bool) -> None:
    s, child = start(tmp_path, f"import sys; sys.exit({code})")
    try:
        assert finished(child) == code
        assert s.may_restart(child) is restart
    finally:
        s.stop_all(grace=1)


def test_a_killed_child_is_started_again_with_its_log(tmp_path: Path) -> None:
    s, child = start(tmp_path, "import time; print('up', flush=True); time.sleep(60)")
    try:
        assert child.process is not None
        first = child.process.pid
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        assert finished(child) == -signal.SIGKILL
        out = io.StringIO()
        assert _restart_or_report(s, out) is True
        assert "svc exited with status -9; restarting it" in out.getvalue()
        assert child.process.pid != first and child.process.poll() is None
        time.sleep(0.5)
        assert child.log_path.read_text().count("up") == 2  # one log across restarts
        assert s.exited() == []
    finally:
        s.stop_all(grace=1)


def test_the_start_limit_stops_a_crash_loop(tmp_path: Path) -> None:
    s, child = start(tmp_path, "import sys; sys.exit(1)")
    out = io.StringIO()
    try:
        for _ in range(sup.RESTART_BURST - 1):
            finished(child)
            assert _restart_or_report(s, out) is True
        finished(child)
        assert len(child.starts) == sup.RESTART_BURST
        assert _restart_or_report(s, out) is False
        assert "svc exited with status 1; stopping" in out.getvalue()
    finally:
        s.stop_all(grace=1)


def test_a_clean_exit_stops_the_stack(tmp_path: Path) -> None:
    s, child = start(tmp_path, "pass")
    out = io.StringIO()
    try:
        finished(child)
        assert _restart_or_report(s, out) is False
        assert "svc exited with status 0; stopping" in out.getvalue()
    finally:
        s.stop_all(grace=1)
