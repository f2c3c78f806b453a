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
