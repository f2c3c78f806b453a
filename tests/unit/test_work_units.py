"""How `make test` shares the suite between its workers (tests/work_units.py): a folder whose tests
share a session fixture is one unit, everything else a unit per file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from work_units import SESSION_FOLDERS, unit_of

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
#: Session fixtures cheap enough to make on each worker, so their folder need not be one unit.
CHEAP = {"tests/unit/agentcore/": "two short espeak-ng clips, a few seconds"}


@pytest.mark.parametrize(
    ("nodeid", "unit"),
    [
        ("tests/cdk/test_nag.py::test_x", "tests/cdk/"),
        ("tests/host/test_host.py::test_units[local]", "tests/host/"),
        ("tests/engine/test_engine.py::test_y[a::b]", "tests/engine/"),
        ("tests/integration/test_page_browser.py::test_z", "tests/integration/test_page_browser.py"),
        ("tests/unit/edge/test_fuzz.py::Test::test_w[x::y]", "tests/unit/edge/test_fuzz.py"),
        ("tests/cdkish/test_a.py::test_b", "tests/cdkish/test_a.py"),
    ],
)
def test_a_session_folder_is_one_unit_and_any_other_file_its_own(nodeid: str, unit: str) -> None:
    assert unit_of(nodeid) == unit


def test_every_folder_with_a_session_fixture_is_one_unit() -> None:
    """A session fixture in a folder's conftest is made once per worker that runs any of the folder's
    tests: the folder must be one unit, or both workers make it (two engines, two hosts)."""
    session_scoped = re.compile(r"""scope\s*=\s*["']session["']""")
    folders = {
        conftest.parent.relative_to(ROOT).as_posix() + "/"
        for conftest in TESTS.rglob("conftest.py")
        if conftest.parent != TESTS and session_scoped.search(conftest.read_text())
    }
    assert folders, "no session fixture found: the scan is wrong"
    assert set(SESSION_FOLDERS) <= folders, "a listed folder makes no session fixture"
    assert folders - set(CHEAP) <= set(SESSION_FOLDERS), (
        f"add to work_units.SESSION_FOLDERS: {folders - set(CHEAP) - set(SESSION_FOLDERS)}"
    )
