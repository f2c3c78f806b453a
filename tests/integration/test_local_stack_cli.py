"""`synapscribe local`: flags, a busy port, READY, and stopping every process on a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def local(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ([], "--port"),
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--port", "1", "--ready-timeout", "0"], "--ready-timeout"),
    ],
)
def test_bad_flags_exit_2(args: list[str], flag: str) -> None:
    done = local(*args)
    assert done.returncode == 2
    assert flag in done.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = local("--port", str(port))
    assert done.returncode == 1
    assert f"port {port}" in done.stderr and "not available" in done.stderr
    assert "READY" not in done.stdout


def test_vllm_model_without_base_url() -> None:
    from synapscribe_local.supervisor import free_port

    env = {k: v for k, v in os.environ.items() if k != "VLLM_BASE_URL"}
    env["VLLM_MODEL"] = "some-model"
    done = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "local", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert "VLLM_MODEL is set but VLLM_BASE_URL is not" in done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes, but it must have been reaped by its parent (the stack).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_process(sig: signal.Signals) -> None:
    stack = LocalStackProcess()
    stack.start()
    try:
        pids = stack.info["pids"]
        assert set(pids) == {"standin", "tts", "agentcore"}
        assert all(_alive(p) for p in pids.values())
        assert stack.process is not None
        stack.process.send_signal(sig)
        assert stack.process.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [name for name, p in pids.items() if _alive(p)]
        with socket.socket() as s:
            s.bind(("127.0.0.1", stack.port))  # the WebSocket port is free again
    finally:
        stack.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_signal_during_start_up_stops_everything() -> None:
    from synapscribe_local.supervisor import free_port

    stack = subprocess.Popen(
        [sys.executable, "-m", "synapscribe.cli", "local", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            children = _children(stack.pid)
            time.sleep(0.05)
        assert children, "the stack started no child process"
        stack.send_signal(signal.SIGTERM)
        out, _ = stack.communicate(timeout=20)
        assert stack.returncode == 0
        assert "READY" not in out
        time.sleep(0.5)
        assert not [p for p in children if _alive(p)]
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)


def test_a_service_that_cannot_start_is_named_with_its_log() -> None:
    from synapscribe_local.supervisor import free_port

    done = local("--port", str(free_port()), env={"SYNAPSCRIBE_TTS_ENGINES": "no-such-engine"})
    assert done.returncode == 1
    assert "tts exited with status" in done.stderr
    assert "SYNAPSCRIBE_TTS_ENGINES" in done.stderr  # the service's own message, from its log
    assert "READY" not in done.stdout


def test_real_model_server_replaces_the_stand_in() -> None:
    """With VLLM_BASE_URL set the stack starts no stand-in and AgentCore uses that server (here an
    OpenAI-compatible server we run ourselves, standing in for vLLM)."""
    from synapscribe_local.supervisor import free_port, http_ok

    port = free_port()
    model = subprocess.Popen(
        [sys.executable, "-m", "synapscribe.cli", "standin", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{port}/v1/models") and time.monotonic() < deadline:
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}/v1"
        with LocalStackProcess(env={"VLLM_BASE_URL": base}) as stack:
            assert "standin" not in stack.info["pids"]
            assert stack.info["services"]["model"] == base
        assert _alive(model.pid), "stopping the stack must not stop a model server it did not start"
    finally:
        os.killpg(model.pid, signal.SIGTERM)
        model.wait(timeout=10)
