"""A SIGKILLed `synapscribe local` cannot stop its children itself: each of them (AgentCore, TTS,
the model stand-in) sees its parent gone and stops within seconds (synapscribe/orphans.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SERVICES = ("agentcore", "tts", "standin")


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found[int(entry.name)] = cmdline.strip()
    return found


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet has stopped: its parent is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_children_of_a_sigkilled_local_stack_stop(tmp_path: Path) -> None:
    stack = LocalStackProcess(env={"TMPDIR": str(tmp_path)})
    stack.start()
    assert stack.process is not None
    kids = children(stack.process.pid)
    try:
        for service in SERVICES:
            assert any(f"synapscribe.cli {service} " in cmd for cmd in kids.values()), (service, kids)
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(pid) for pid in kids):
            time.sleep(0.2)
        left = {pid: cmd for pid, cmd in kids.items() if alive(pid)}
        assert not left, f"still running 15 s after their parent was SIGKILLed: {left}"
    finally:
        for pid in kids:  # only the children seen above, should the check have failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        stack.stop()
