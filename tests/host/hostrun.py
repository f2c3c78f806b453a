"""State the host-verification fixture shares with the tests and the timing summary (a module of
its own: test modules must not import conftest)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field


@dataclass
class HostRun:
    """What the nspawn fixture did, for the idempotence test and the timing summary."""

    address: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    playbook_runs: list[tuple[int, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


RUN = HostRun()


def timed(name: str, started: float) -> None:
    RUN.timings[name] = round(time.monotonic() - started, 1)


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the (single) host."""
    match = re.search(r"PLAY RECAP \*+\n\S+\s+:\s+(.+)", output)
    if not match:
        raise AssertionError(f"no PLAY RECAP in ansible-playbook output:\n{output[-3000:]}")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def changed_tasks(output: str) -> list[str]:
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            tasks.append(current)
    return tasks
