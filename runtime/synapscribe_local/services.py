"""Run a service as a child process on a loopback port: pick a free port, start it with its output
captured, wait until it is ready, and stop it (SIGTERM, then SIGKILL) on the way out.

port = free_port()
url = f"http://127.0.0.1:{port}"
with spawn_service([..., "--port", str(port)], lambda: http_ok(url + "/health"), name="TTS service"):
    ...
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from synapscribe.orphans import parent_env

LOG_TAIL_LINES = 200


class ServiceStartError(RuntimeError):
    """A service did not come up; the message names it and ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET `url` answers 200; False when it answers otherwise or cannot be reached."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def terminate(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 10.0, *, group: bool = False
) -> None:
    """SIGTERM `proc`; SIGKILL it (its whole process group when `group`) if it has not exited in `grace` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=10)


def _tail(log: IO[bytes], lines: int = LOG_TAIL_LINES) -> str:
    log.flush()
    log.seek(0)
    return "\n".join(log.read().decode("utf-8", "replace").splitlines()[-lines:])


@contextlib.contextmanager
def spawn_service(
    cmd: Sequence[str],
    ready: Callable[[], bool],
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    log_path: Path | None = None,
    error: type[ServiceStartError] = ServiceStartError,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `cmd` (environment: ours updated with `env`), poll `ready()` until it is true, yield the
    process, and stop it on exit. Output goes to `log_path` (a temporary file if None). If the
    process exits, or is not ready within `timeout` s, raise `error` naming `name`, with the log tail."""
    child_env = {**os.environ, **parent_env(), **(env or {})}
    log: IO[bytes]
    with log_path.open("w+b") if log_path is not None else tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=child_env)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    state = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready"
                    raise error(f"{name} {state} ({' '.join(cmd)}):\n{_tail(log)}")
                time.sleep(0.05)
            yield proc
        finally:
            terminate(proc)


@dataclass(frozen=True)
class SubcommandService:
    """`python -m synapscribe.cli SUBCOMMAND` as a service. Calling it, `with service(ARGS) as url:`,
    starts `SUBCOMMAND --host HOST --port N ARGS` on a free port, waits until GET `ready_path`
    answers 200, yields its base URL ("http://HOST:N"), and stops it on the way out."""

    subcommand: str
    ready_path: str
    name: str
    error: type[ServiceStartError] = ServiceStartError

    @contextlib.contextmanager
    def __call__(
        self,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
    ) -> Iterator[str]:
        port = free_port(host)
        url = f"http://{host}:{port}"
        cmd = [sys.executable, "-m", "synapscribe.cli", self.subcommand, "--host", host, "--port", str(port)]
        with spawn_service(
            [*cmd, *args],
            lambda: http_ok(url + self.ready_path),
            name=self.name,
            env=env,
            timeout=timeout,
            error=self.error,
        ):
            yield url
