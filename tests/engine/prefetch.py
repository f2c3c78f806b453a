"""Build the engine tests' slow, cached inputs (the CPU engine's environment, then the tiny model)
ahead of time. The engine conftest starts this in the background when the session collects engine
tests, so the install overlaps the unit tests; the fixture then finds the caches ready or waits on
the same file locks.
"""

from __future__ import annotations

import sys

# tests/engine and tests/ come on PYTHONPATH from the conftest that starts this (script_env).
from engine_venv import engine_venv
from tiny_model import tiny_model


def main() -> int:
    venv, seconds = engine_venv()
    print(f"engine venv: {venv} ({seconds:.1f} s)", flush=True)
    model, seconds = tiny_model(venv / "bin" / "python")
    print(f"tiny model: {model} ({seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
