"""A child started with parent_env() (our services) or die_with_parent() (vLLM) stops within
seconds when its parent is SIGKILLed and cannot stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synapscribe.orphans import PARENT_PID_ENV, exit_with_parent, parent_env

# The parent starts one child, prints its pid and waits to be killed.
PARENT = """
import subprocess, sys, time
from synapscribe.orphans import die_with_parent, parent_env
child = sys.argv[1]
if sys.argv[2] == "watch":
    proc = subprocess.Popen([sys.executable, "-c", child], env={**__import__("os").environ, **parent_env()})
else:
    proc = subprocess.Popen([sys.executable, "-c", child], preexec_fn=die_with_parent())
print(proc.pid, flush=True)
time.sleep(120)
"""
WATCHING_CHILD = (
    "import time; from synapscribe.orphans import exit_with_parent; exit_with_parent(); time.sleep(120)"
)
PLAIN_CHILD = "import time; time.sleep(120)"


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet has stopped: its parent is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def orphan_after_parent_killed(child: str, how: str) -> int:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, child, how], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    time.sleep(1.0)  # the child is up (and its watch running)
    assert alive(child_pid)
    parent.kill()
    parent.wait()
    return child_pid


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    ("child", "how"),
    [(WATCHING_CHILD, "watch"), (PLAIN_CHILD, "pdeathsig")],
    ids=["exit_with_parent", "die_with_parent"],
)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_a_child_stops_when_its_parent_is_sigkilled(child: str, how: str) -> None:
    pid = orphan_after_parent_killed(child, how)
    try:
        assert wait_gone(pid, 5.0), f"the child {pid} outlived its SIGKILLed parent"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_without_either_the_child_outlives_its_parent() -> None:
    # The check above can tell: a plain child of a SIGKILLed parent runs on.
    pid = orphan_after_parent_killed(PLAIN_CHILD, "watch")
    try:
        assert not wait_gone(pid, 2.0)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_the_parent_pid_is_not_passed_on() -> None:
    # A grandchild must not watch its grandparent: the child takes the entry out of its environment.
    probe = (
        "import os; from synapscribe.orphans import PARENT_PID_ENV, exit_with_parent, parent_env; "
        "t = exit_with_parent(); print(t is not None and t.daemon, PARENT_PID_ENV in os.environ)"
    )
    env = {**os.environ, **parent_env()}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["True", "False"], done.stderr
    assert exit_with_parent({}) is None
    assert exit_with_parent({PARENT_PID_ENV: "not-a-pid"}) is None
