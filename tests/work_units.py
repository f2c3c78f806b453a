"""How `make test` shares the suite between its 2 workers (`pytest -n 2 --dist loadfile`, with the
scheduler below, which tests/conftest.py installs for loadfile).

A unit of work is one test file, so a module's fixtures (a local stack, the browser's tour) are made
once, except the folders whose conftest makes a slow session fixture shared by their files (the
nspawn host, the CDK synth and its linters, the real engine): each of those is one unit, so one
worker runs the whole folder in order and makes the fixture once. Units are handed out in
collection order, which the workers' conftest sets longest first (`worker_rank`), so the slow
units start at once and the short files at the end fill the gaps until both workers finish.

(`--dist loadgroup` with `xdist_group` marks would say the same, but xdist 3.8 marks a group by
renaming the items' node ids, which pytest 9.2 no longer reads: every test ends up a unit of its own;
pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

#: Folders whose tests share session fixtures from the folder's conftest, longest first.
SESSION_FOLDERS = ("tests/host/", "tests/cdk/", "tests/engine/")


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its session folder, else its file."""
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in SESSION_FOLDERS if path.startswith(folder)), path)


def worker_rank(item: pytest.Item) -> int:
    """Where a test's unit goes in the workers' order: the session folders, then the browser's
    tour (the longest file), then the files that start processes, then the rest."""
    unit = unit_of(item.nodeid)
    if unit in SESSION_FOLDERS:
        return SESSION_FOLDERS.index(unit)
    if item.get_closest_marker("browser"):
        return len(SESSION_FOLDERS)
    if item.get_closest_marker("integration") or unit.startswith("tests/integration/"):
        return len(SESSION_FOLDERS) + 1
    return len(SESSION_FOLDERS) + 2


class FolderOrFileScheduling(LoadScopeScheduling):
    """xdist's loadfile, with each session folder one unit, handed out in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)
