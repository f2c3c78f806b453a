"""Static checks run as tests, so `make test` (and CI) fail on lint or type errors."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


def test_ruff_lint():
    _run(str(BIN / "ruff"), "check", ".")


def test_ruff_format():
    _run(str(BIN / "ruff"), "format", "--check", ".")


def test_mypy():
    _run(str(BIN / "mypy"))
