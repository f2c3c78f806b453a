"""`synapscribe local` on the way out: a model server that does not answer is named with AgentCore's
own reason (not a timeout and a log of health checks), and a clean stop leaves nothing in the
temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synapscribe_local.stack import EXTERNAL_MODEL_GRACE_SECONDS
from synapscribe_local.supervisor import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def local_argv() -> list[str]:
    return [sys.executable, "-m", "synapscribe.cli", "local", "--port", str(free_port())]


def test_a_model_server_where_nothing_listens_is_named_fast(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    done = subprocess.run(
        local_argv(),
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "VLLM_BASE_URL": dead, "TMPDIR": str(tmp_path)},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "READY" not in done.stdout
    assert f"agentcore is not ready: the model server (vLLM at {dead})" in done.stderr, done.stderr
    assert "cannot be reached" in done.stderr
    assert '"GET /' not in done.stderr  # the reason, not a tail of AgentCore's access log
    # Well inside the 90 s ready timeout: start-up plus the grace AgentCore's reason is given.
    assert elapsed < 90 - EXTERNAL_MODEL_GRACE_SECONDS, f"took {elapsed:.0f} s"
    # A failed run keeps its logs: the error points at them.
    assert any(p.name.startswith("synapscribe-local-") for p in tmp_path.iterdir())


def test_a_clean_stop_removes_the_temporary_log_folder(tmp_path: Path) -> None:
    stack = subprocess.Popen(
        local_argv(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert stack.stdout is not None
        line = stack.stdout.readline()
        if line.startswith("PAGE "):  # the student page's URL comes first
            line = stack.stdout.readline()
        assert line.startswith("READY "), line
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("synapscribe-local-")]
        stack.send_signal(signal.SIGTERM)
        _, err = stack.communicate(timeout=30)
        assert stack.returncode == 0, err
        assert list(tmp_path.iterdir()) == [], "the stack left files in its TMPDIR"
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
