"""Tools the tests need: a missing one fails the test (scripts/setup installs them all), it never
skips silently. The host tests may still skip when not root, except under CI."""

from __future__ import annotations

import os
import shutil

import pytest

SETUP_HINT = "run scripts/setup (it apt-installs espeak-ng, sox, ffmpeg, packer, debootstrap …)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


def require_tools(*names: str) -> None:
    """Fail the calling test naming each missing tool and the setup step. `make test-fast`, which
    sets up only the .venv, sets SYNAPSCRIBE_MISSING_TOOLS=skip: then the test skips with the same
    message (shown by -ra), except under CI, which must run everything."""
    missing = missing_tools(*names)
    if missing:
        message = f"{', '.join(missing)} not installed on PATH: {SETUP_HINT}"
        if os.environ.get("SYNAPSCRIBE_MISSING_TOOLS") == "skip" and not in_ci():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)


def skip_unless_possible_or_fail_in_ci(reason: str | None) -> None:
    """For tests that need what a developer machine may lack (root): skip locally, fail in CI."""
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI must run this test but it cannot: {reason}", pytrace=False)
    pytest.skip(reason)
