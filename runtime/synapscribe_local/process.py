"""`synapscribe local` as a child process: start it, wait for READY, stop it (demo, tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from synapscribe.orphans import parent_env

from synapscribe_local.aws import LOCAL_CREDENTIALS
from synapscribe_local.services import free_port, terminate
from synapscribe_local.supervisor import StackError


class LocalStackProcess:
    """Runs `synapscribe local --port PORT` in its own session; `info` holds its endpoints."""

    def __init__(
        self,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        ready_timeout: float = 120.0,
        echo: bool = False,
        keep_logs: bool = False,
        sweep_interval: float | None = None,
        fleet_at_zero: bool = False,
        agentcore_hosts: int = 1,
    ) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.echo = echo
        #: Logs are removed after a clean stop unless kept; a failed stack always keeps them.
        self.keep_logs = keep_logs
        #: Seconds between sweeper runs (`--sweep-interval`; default: the platform's).
        self.sweep_interval = sweep_interval
        #: `--fleet-at-zero`: AgentCore starts only when a question scales the emulated fleet out.
        self.fleet_at_zero = fleet_at_zero
        #: `--agentcore-hosts`: AgentCore hosts on the one model server, routed to by lecture.
        self.agentcore_hosts = agentcore_hosts
        self.workdir = Path(tempfile.mkdtemp(prefix="synapscribe-stack-"))
        self.info_path = self.workdir / "info.json"
        self.log_path = self.workdir / "stack.log"
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.url = ""
        #: The student page's URL (the `PAGE` line printed before `READY`).
        self.page_url = ""
        self._lines: list[str] = []

    def start(self) -> str:
        argv = [
            sys.executable,
            "-m",
            "synapscribe.cli",
            "local",
            "--port",
            str(self.port),
            "--info-json",
            str(self.info_path),
            "--log-dir",
            str(self.workdir / "logs"),
            "--ready-timeout",
            str(self.ready_timeout),
        ]
        if self.sweep_interval is not None:
            argv += ["--sweep-interval", str(self.sweep_interval)]
        if self.fleet_at_zero:
            argv.append("--fleet-at-zero")
        if self.agentcore_hosts != 1:
            argv += ["--agentcore-hosts", str(self.agentcore_hosts)]
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            argv,
            env={**self.env, **parent_env()},  # the stack stops when its starter is gone
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()
        ready = threading.Event()
        threading.Thread(target=self._read_stdout, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout + 30
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.keep_logs = True
                self.stop()
                raise StackError(
                    f"the local stack did not get ready; its log ({self.log_path}) says:\n{self.log_tail()}"
                )
        self.info = json.loads(self.info_path.read_text())
        return self.url

    def _read_stdout(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)
            if self.echo:
                print(line, end="", flush=True)
            if line.startswith("PAGE "):
                self.page_url = line.split(None, 1)[1].strip()
            if line.startswith("READY "):
                self.url = line.split(None, 1)[1].strip()
                ready.set()

    def aws_client(self, service: str) -> Any:
        """A boto3 client of the running stack's moto (e.g. "dynamodb", "s3"), for tests that look
        at what the stack stored."""
        return boto3.client(
            service,
            endpoint_url=self.info["awsEndpoint"],
            region_name=self.info["region"],
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as an operator would; SIGKILL only if it does not stop in `timeout` s."""
        if self.process is None:
            return None
        terminate(self.process, timeout, group=True)
        if self.process.returncode == 0 and not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> LocalStackProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
