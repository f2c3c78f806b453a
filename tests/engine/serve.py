"""Start the engine tests' vLLM server by hand and keep it running (for development):

    PYTHONPATH=tests .venv/bin/python tests/engine/serve.py --port 18000

builds (or reuses) the cached CPU engine and tiny model, starts the server with the vLLM unit's
command line, prints its URL, served name and model directory, and serves until Ctrl-C or SIGTERM.
Point the tests at it with SYNAPSCRIBE_ENGINE_URL=http://127.0.0.1:18000 (and, for tests that read
the model's files, SYNAPSCRIBE_ENGINE_MODEL_DIR=<the printed directory>).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

# Its own folder is on sys.path as a script's is; tests/ comes from PYTHONPATH (see above).
from engine_server import START_TIMEOUT_SECONDS, EngineStartError, running_engine
from engine_venv import engine_venv
from tiny_model import tiny_model


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_SECONDS, help="start timeout (s)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    venv, _ = engine_venv()
    model, _ = tiny_model(venv / "bin" / "python")
    print(f"engine environment {venv}, model {model} ({time.monotonic() - started:.0f} s)", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="synapscribe-engine-"))
    try:
        with running_engine(venv, model, workdir, port=args.port or None, timeout=args.timeout) as engine:
            print(
                f"serving {engine.model} at {engine.base_url} (started in {engine.start_seconds:.0f} s)\n"
                f"  SYNAPSCRIBE_ENGINE_URL={engine.base_url} SYNAPSCRIBE_ENGINE_MODEL_DIR={model}\n"
                f"  log: {engine.log_path}",
                flush=True,
            )
            while engine.process is not None and engine.process.poll() is None:
                time.sleep(1)
            print(f"vLLM exited {engine.process.returncode if engine.process else '?'}:\n{engine.log_tail()}")
            return 1
    except EngineStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
