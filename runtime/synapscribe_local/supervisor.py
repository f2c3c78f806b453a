"""Child processes of the local stack: start each in its own process group, wait until it is
ready, and stop every one of them (and their children) on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
from synapscribe.orphans import parent_env

from synapscribe_local.services import free_port, http_ok

__all__ = [
    "Child",
    "StackCancelled",
    "StackError",
    "Supervisor",
    "check_port_free",
    "free_port",
    "http_ok",
    "not_ready_reason",
]


class StackError(RuntimeError):
    """The local stack cannot start; the message says which part and why."""


class StackCancelled(StackError):
    """A stop was requested before the stack was ready."""


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise StackError when `port` cannot be bound on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {host} is not available ({exc.strerror}); pick another --port"
            ) from None


#: What the hosts' systemd units say (ansible/roles/*/templates/*.service.j2): restart a service
#: that failed, unless its status says retrying cannot help (2 a bad environment, 78 no
#: configuration), and at most `RESTART_BURST` starts in `RESTART_INTERVAL_SECONDS`.
RESTART_PREVENT_EXIT_STATUS = frozenset({2, 78})
RESTART_BURST = 5
RESTART_INTERVAL_SECONDS = 300.0


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    ready_url: str
    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: BinaryIO | None = field(default=None, repr=False)
    #: When it was (re)started, for the start limit (monotonic seconds).
    starts: list[float] = field(default_factory=list)
    #: One of several AgentCore hosts (`synapscribe local --agentcore-hosts`): when it dies it stays
    #: gone, as a spot-interrupted instance does, and the stack runs on with the others.
    expendable: bool = False

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children, each the leader of its own process group, and stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], ready_url: str, env: Mapping[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, list(argv), ready_url, dict(env), self.log_dir / f"{name}.log")
        child._log = child.log_path.open("ab")
        self._spawn(child)
        self.children.append(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.starts.append(time.monotonic())
        child.process = subprocess.Popen(
            list(child.argv),
            env={**child.env, **parent_env()},  # it stops when we are gone, even SIGKILLed
            stdin=subprocess.DEVNULL,
            stdout=child._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def may_restart(self, child: Child) -> bool:
        """systemd's Restart=on-failure with the units' start limit: a child that failed (not one
        that exited 0, or with a status that says retrying cannot help) is started again, at most
        RESTART_BURST times in RESTART_INTERVAL_SECONDS."""
        assert child.process is not None
        code = child.process.returncode
        if code is None or code == 0 or code in RESTART_PREVENT_EXIT_STATUS:
            return False
        recent = [t for t in child.starts if time.monotonic() - t < RESTART_INTERVAL_SECONDS]
        return len(recent) < RESTART_BURST

    def restart(self, child: Child) -> None:
        """Start a child that exited again, with its argv, environment and log (its own group's
        leftovers killed first, as systemd's KillMode=control-group does)."""
        _signal_group(child, signal.SIGKILL)
        self._spawn(child)

    def wait_ready(
        self,
        child: Child,
        timeout: float,
        probe: Callable[[str], bool] = http_ok,
        interval: float = 0.1,
        cancelled: Callable[[], bool] = lambda: False,
        give_up_on_reason: float | None = None,
    ) -> float:
        """Seconds until `child.ready_url` answers 200; StackError if it exits, times out or the
        wait is `cancelled` (a signal arrived during start-up). With `give_up_on_reason`, a
        not-ready reason the child's `/ready` body gives (AgentCore's `missing` list) for that many
        seconds ends the wait early, naming the reason: the part it waits for is not coming."""
        assert child.process is not None
        start = time.monotonic()
        reason: str | None = None
        reason_since = start
        while True:
            if cancelled():
                raise StackCancelled(f"stopped while waiting for {child.name}")
            code = child.process.poll()
            if code is not None:
                raise StackError(
                    f"{child.name} exited with status {code} before it was ready; "
                    f"its log ({child.log_path}) ends with:\n{child.log_tail()}"
                )
            if probe(child.ready_url):
                return time.monotonic() - start
            now = time.monotonic()
            if give_up_on_reason is not None:
                latest = not_ready_reason(child.ready_url)
                if latest != reason:
                    reason, reason_since = latest, now
                if reason is not None and now - reason_since >= give_up_on_reason:
                    raise StackError(f"{child.name} is not ready: {reason}")
            if now - start > timeout:
                raise StackError(_timeout_message(child, timeout, reason))
            time.sleep(interval)

    def exited(self) -> list[Child]:
        """Children that have exited on their own."""
        return [c for c in self.children if c.process is not None and c.process.poll() is not None]

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every child's process group, then SIGKILL what is left after `grace` seconds."""
        for child in reversed(self.children):
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            assert child.process is not None
            remaining = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=remaining)
            # The leader may be gone while its own children linger: kill the group regardless.
            _signal_group(child, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=2)
            log = child._log
            if log is not None:
                log.close()
        self.children.clear()


def not_ready_reason(url: str, timeout: float = 1.0) -> str | None:
    """What a `/ready` endpoint says is missing (the `missing` list of its non-200 JSON body)."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code == 200:
        return None
    try:
        missing = response.json().get("missing")
    except (ValueError, AttributeError):
        return None
    return "; ".join(str(m) for m in missing) if isinstance(missing, list) and missing else None


def _timeout_message(child: Child, timeout: float, reason: str | None) -> str:
    head = f"{child.name} was not ready at {child.ready_url} after {timeout:.0f} s"
    if reason is not None:
        # The reason, not a log tail of access lines ("GET /health 200" twenty times).
        return f"{head}: {reason} (log: {child.log_path})"
    return f"{head}; its log ({child.log_path}) ends with:\n{child.log_tail()}"


def _signal_group(child: Child, sig: signal.Signals) -> None:
    if child.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)
