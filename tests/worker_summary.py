"""The lines a folder's conftest prints at the end of a run (the host verification's and the engine
tests' timings), carried from pytest-xdist's workers to the controller: under `make test` only the
controller prints the summary, and it loads no folder's conftest."""

from __future__ import annotations

from typing import Any

import pytest

KEY = "synapscribe_summary_lines"


def hand_to_controller(config: pytest.Config, lines: list[str]) -> None:
    """On a worker: send `lines` with the worker's output (a run without workers prints them itself)."""
    output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if output is not None and lines:
        output.setdefault(KEY, []).extend(lines)


def from_workers(outputs: list[dict[str, Any]]) -> list[str]:
    """Every worker's lines, in order, each once (both workers report the shared background builds)."""
    seen: dict[str, None] = {}
    for output in outputs:
        for line in output.get(KEY, []):
            seen.setdefault(line, None)
    return list(seen)
