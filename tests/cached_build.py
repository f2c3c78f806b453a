"""Slow test inputs (root filesystems, virtual environments, model directories) built once and kept
outside the checkout in `$SYNAPSCRIBE_CACHE_DIR` (default `~/.cache/synapscribe`).

Each build runs under a file lock (a background prefetch and a fixture may want the same thing at
once; the second waits and reuses it) into `<target>.partial`, renamed into place only when it is
complete, so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CACHE_DIR = Path(os.environ.get("SYNAPSCRIBE_CACHE_DIR", Path.home() / ".cache" / "synapscribe"))
TESTS = Path(__file__).resolve().parent


def script_env(folder: Path) -> dict[str, str]:
    """The environment for running one of the tests' helper scripts as a program (a background
    prefetch): its own folder and tests/ importable, as pytest makes them for the conftests."""
    paths = [str(folder), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def cached_build(target: Path, build: Callable[[Path], None], *, done: str = "") -> tuple[Path, float]:
    """`target`, built by `build(partial_dir)` unless it exists; and the seconds spent building or
    waiting for another process's build. `done` names a file inside the target that proves it is
    complete (default: the target's existence)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with target.with_name(target.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / done).exists():
            return target, time.monotonic() - started
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build(partial)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover without its `done` file
        partial.rename(target)
    return target, time.monotonic() - started


class BackgroundPrefetch:
    """A helper script (`prefetch.py` of a test package) run in the background from the end of
    collection, in its own process group, so slow inputs build while the faster tests run; the
    fixtures that need them then wait on cached_build's lock. Output goes to `log`.
    SYNAPSCRIBE_NO_PREFETCH=1 turns it off (e.g. for --collect-only)."""

    def __init__(self, script: Path, log: Path) -> None:
        self.script = script
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def enabled() -> bool:
        return not os.environ.get("SYNAPSCRIBE_NO_PREFETCH")

    def start(self) -> None:
        if self.process is not None or not self.enabled():
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(self.script)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=script_env(self.script.resolve().parent),
            )  # fmt: skip

    def built(self) -> str | None:
        """What the prefetch logged, on one line ("" before it logged anything); None if it never ran."""
        if self.process is None:
            return None
        text = self.log.read_text() if self.log.exists() else ""
        return "; ".join(text.split("\n")).strip("; ")

    def stop(self) -> None:
        """Stop the builders of an interrupted session; their partial output is discarded next time."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
