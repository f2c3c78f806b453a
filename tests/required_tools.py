"""Tools the tests need: a missing one fails the test (scripts/setup installs them all), it never
skips silently. The host tests may still skip when not root, except under CI.

A test (or a whole module, through `pytestmark`) says which programs it runs with
`@pytest.mark.needs_tool("sox", "ffmpeg")`; tests/conftest.py checks them before the test's
fixtures are set up. A helper or fixture that runs a program itself calls `require_tools`."""

from __future__ import annotations

import os
import shutil

import pytest

SETUP_HINT = "run scripts/setup (it apt-installs espeak-ng, sox, ffmpeg, packer, debootstrap …)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


#: The marker: `@pytest.mark.needs_tool("espeak-ng", "sox")`.
MARKER = "needs_tool"
MARKER_HELP = (
    f"{MARKER}(*names): the test runs these programs (espeak-ng, sox, ffmpeg, packer, node, chromium …); "
    "a missing one fails it, or skips it under SYNAPSCRIBE_MISSING_TOOLS=skip outside CI"
)


def tools_needed(item: pytest.Item) -> list[str]:
    """Every tool the `needs_tool` markers of a test name (its own, its class's, its module's), once."""
    return list(dict.fromkeys(name for mark in item.iter_markers(MARKER) for name in mark.args))


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
