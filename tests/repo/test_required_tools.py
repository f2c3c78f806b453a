"""The tests' tool check fails (never skips) naming the tool and the setup step; the root-only
host tests skip on a developer machine but fail under CI. `@pytest.mark.needs_tool(...)` runs the
same check before a test's fixtures (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from required_tools import require_tools, skip_unless_possible_or_fail_in_ci, tools_needed

TESTS = Path(__file__).resolve().parents[1]


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


@pytest.mark.needs_tool("sh", "env")
@pytest.mark.needs_tool("sh")
def test_the_marker_names_each_tool_once(request: pytest.FixtureRequest) -> None:
    assert sorted(tools_needed(request.node)) == ["env", "sh"]


MARKED_TESTS = """
import pytest

@pytest.fixture
def runs_the_tool():
    raise AssertionError("the fixture was set up before the tool check")

@pytest.mark.needs_tool("sh")
def test_present():
    pass

@pytest.mark.needs_tool("sh", "no-such-tool-synapscribe")
def test_missing(runs_the_tool):
    pass
"""


@pytest.mark.parametrize(
    ("env", "exit_code", "outcome"),
    [
        ({}, 1, "1 passed, 1 error"),  # CI and `make test`: a missing tool fails the test
        ({"SYNAPSCRIBE_MISSING_TOOLS": "skip"}, 0, "1 passed, 1 skipped"),  # `make test-fast`
        ({"SYNAPSCRIBE_MISSING_TOOLS": "skip", "CI": "true"}, 1, "1 passed, 1 error"),  # CI never skips
    ],
)
def test_the_suites_hook_checks_marked_tests_before_their_fixtures(
    tmp_path: Path, env: dict[str, str], exit_code: int, outcome: str
) -> None:
    """The suite's own tests/conftest.py (loaded as a plugin) on a marked test file."""
    (tmp_path / "test_marked.py").write_text(MARKED_TESTS)
    base = {
        k: v for k, v in os.environ.items() if k not in ("CI", "SYNAPSCRIBE_MISSING_TOOLS", "PYTEST_ADDOPTS")
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rs", "-q", "test_marked.py"],
        cwd=tmp_path,
        env={**base, **env, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == exit_code, out
    assert outcome in out, out
    assert "no-such-tool-synapscribe not installed on PATH: run scripts/setup" in out, out
    assert "the fixture was set up before the tool check" not in out, out


def test_no_test_skips_on_a_missing_program() -> None:
    """A missing program is `needs_tool`'s to report (a failure under CI): a `skipif` on
    `shutil.which` would let CI skip the test silently."""
    import re

    pattern = re.compile(r"skipif\((?:[^()]|\([^()]*\))*which\(", re.S)
    found = [
        f"{path.relative_to(TESTS)}:{text.count(chr(10), 0, m.start()) + 1}"
        for path in sorted(TESTS.rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for m in pattern.finditer(text)
        if path.name != "test_required_tools.py"
    ]
    assert not found, f"skipif on a missing program (use @pytest.mark.needs_tool): {found}"
