"""Run the TTS service as a child process on a free loopback port (tests, benchmarks, local stack).

with spawn_tts(env={"SYNAPSCRIBE_TTS_ENGINES": "espeak-ng"}) as base_url:   # "http://127.0.0.1:PORT"
    httpx.post(base_url + "/v1/audio/speech", json={"input": "Hello.", "voice": "en"})

`offline_env()` gives the environment for a hermetic run on any machine: gTTS first, but its
HTTPS goes to a loopback proxy port nobody listens on, so it fails at once and espeak-ng speaks.
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


class TtsStartError(RuntimeError):
    """The TTS service did not come up (its output is in the message)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def offline_env(engines: str = "gtts,espeak-ng") -> dict[str, str]:
    """Environment in which Google is unreachable (connection refused), whatever the network."""
    refused = f"http://127.0.0.1:{free_port()}"
    return {
        "SYNAPSCRIBE_TTS_ENGINES": engines,
        "HTTPS_PROXY": refused,
        "https_proxy": refused,
        "HTTP_PROXY": refused,
        "http_proxy": refused,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def spawn_tts(
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> Iterator[str]:
    """Start `python -m synapscribe.cli tts --port N ARGS`, wait for /health, yield its URL."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    cmd = [sys.executable, "-m", "synapscribe.cli", "tts", "--host", host, "--port", str(port), *args]
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
                    raise TtsStartError(f"TTS service {state} ({' '.join(cmd)}):\n{output}")
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
