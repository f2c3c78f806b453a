"""The tests' tool check fails (never skips) naming the tool and the setup step; the root-only
host tests skip on a developer machine but fail under CI."""

from __future__ import annotations

import pytest
from required_tools import require_tools, skip_unless_possible_or_fail_in_ci


def test_a_missing_tool_fails_naming_it_and_the_setup_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("SYNAPSCRIBE_MISSING_TOOLS", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"espeak-ng, sox not installed.*scripts/setup"):
        require_tools("espeak-ng", "sox")


def test_test_fast_skips_a_missing_tool_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("SYNAPSCRIBE_MISSING_TOOLS", "skip")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"espeak-ng not installed.*scripts/setup"):
        require_tools("espeak-ng")
    monkeypatch.setenv("CI", "true")  # CI never skips
    with pytest.raises(pytest.fail.Exception, match=r"espeak-ng not installed"):
        require_tools("espeak-ng")


def test_present_tools_pass() -> None:
    require_tools("sh")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_cannot_run_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"CI must run this test.*needs root"):
        skip_unless_possible_or_fail_in_ci("needs root")


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_cannot_run_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        skip_unless_possible_or_fail_in_ci("needs root")
    skip_unless_possible_or_fail_in_ci(None)  # nothing missing: runs
