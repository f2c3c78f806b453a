"""Run the stand-in as a child process on a free loopback port (tests, benchmarks).

with spawn_standin(["--report-latencies"]) as base_url:   # "http://127.0.0.1:PORT"
    AsyncOpenAI(base_url=base_url + "/v1", api_key="EMPTY")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence

import httpx


class StandinStartError(RuntimeError):
    """The stand-in did not come up (its output is in the message)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/models", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def spawn_standin(
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> Iterator[str]:
    """Start `python -m synapscribe.cli standin --port N ARGS`, wait for /v1/models, yield its URL."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    cmd = [sys.executable, "-m", "synapscribe.cli", "standin", "--host", host, "--port", str(port), *args]
    child_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)
        try:
            deadline = time.monotonic() + timeout
            while not _ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode("utf-8", "replace")
                    state = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready"
                    raise StandinStartError(f"stand-in {state} ({' '.join(cmd)}):\n{output}")
                time.sleep(0.05)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
