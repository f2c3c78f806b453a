"""Build the engine tests' slow, cached inputs (the CPU engine's environment, then the tiny model)
ahead of time. The engine conftest starts this in the background when the session collects engine
tests, so the install overlaps the unit tests; the fixture then finds the caches ready or waits on
the same file locks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from engine_venv import engine_venv  # noqa: E402
from tiny_model import tiny_model  # noqa: E402


def main() -> int:
    venv, seconds = engine_venv()
    print(f"engine venv: {venv} ({seconds:.1f} s)", flush=True)
    model, seconds = tiny_model(venv / "bin" / "python")
    print(f"tiny model: {model} ({seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
