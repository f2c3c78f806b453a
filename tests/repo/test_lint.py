"""Static checks run as tests, so `make test` (and CI) fail on lint or type errors."""

import fcntl
import subprocess
import sys
from pathlib import Path

from cached_build import CACHE_DIR

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: mypy's incremental cache, kept outside the checkout so a fresh clone on a warm machine starts
#: from it: mypy trusts a cached module only when its source's content hash still matches (a new
#: clone's paths and mtimes differ, which costs a hash, not a re-check), and re-checks what changed
#: and what depends on it. The third-party stubs (aws_cdk's above all) are most of a cold run.
MYPY_CACHE = CACHE_DIR / "mypy-cache"


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


def test_ruff_lint():
    _run(str(BIN / "ruff"), "check", ".")


def test_ruff_format():
    _run(str(BIN / "ruff"), "format", "--check", ".")


def test_mypy():
    MYPY_CACHE.parent.mkdir(parents=True, exist_ok=True)
    # One mypy at a time per cache (other clones on the machine share it): its files are written
    # one by one, and a run must not read another's half-written set.
    with MYPY_CACHE.with_name(MYPY_CACHE.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run(str(BIN / "mypy"), "--cache-dir", str(MYPY_CACHE))
