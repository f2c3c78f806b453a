"""AgentCore as a real process receiving SIGTERM (spot interruption, scale-in, `systemctl stop`):
the query in flight still gets its whole answer, new work is refused (the edge says `busy`), the
process exits 0 within the drain timeout; and the operator diagnostics over loopback."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest
from synapscribe.agentcore import diagnostics as diag
from synapscribe.edge.agentcore_client import AgentCoreBusy, post_job
from synapscribe_local import audiogen
from synapscribe_local.harness import agentcore_rig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.needs_tool("espeak-ng"),
]


OWNER = "eu-west-1:student-1"
DRAIN_TIMEOUT = 20.0


def _job(session_id: str, request_id: str) -> dict[str, object]:
    return {
        "connectionId": "conn-late",
        "owner": OWNER,
        "sessionId": session_id,
        "requestId": request_id,
        "text": "And chlorophyll?",
        "voice": False,
        "receivedAtMs": int(time.time() * 1000),
    }


def test_sigterm_finishes_the_answer_in_flight_refuses_new_work_and_exits_0(tmp_path: Path) -> None:
    # An answer that takes ~4 s: first token after 2 s, then 170 tokens at 85 a second.
    with agentcore_rig(
        standin_args=["--first-token-seconds", "2", "--tokens-per-second", "85"],
        agentcore_env={"SYNAPSCRIBE_DRAIN_TIMEOUT_SECONDS": str(DRAIN_TIMEOUT)},
    ) as s:
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        session_id = s.start_session(OWNER, lecture)
        request_id = s.submit(OWNER, session_id, "conn-inflight", text="What does rubisco do?", voice=True)
        time.sleep(0.5)
        assert s.receiver.of("conn-inflight") == [] or all(
            r.message["type"] not in ("answer", "error") for r in s.receiver.of("conn-inflight")
        )

        if shutil.which("nvidia-smi") is None:  # no NVIDIA driver on this host: the clear 503
            gpu = httpx.get(s.agentcore.url + "/v1/diagnostics/gpu", timeout=10)
            assert gpu.status_code == 503 and "nvidia-smi is not installed" in gpu.json()["detail"]

        proc = s.agentcore.proc
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the server notices the drain on its next tick (0.1 s)

        ready = httpx.get(s.agentcore.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["draining"] is True, ready.text
        late = httpx.post(s.agentcore.url + "/v1/queries", json=_job(session_id, "req-late"), timeout=5)
        assert late.status_code == 503 and "draining" in late.text
        with pytest.raises(AgentCoreBusy, match="draining"):
            post_job(s.agentcore.url, "/v1/queries", _job(session_id, "req-late-2"), timeout=5)
        transcribe = httpx.post(
            f"{s.agentcore.url}/v1/lectures/{lecture['lectureId']}/transcribe", json={}, timeout=5
        )
        assert transcribe.status_code == 503
        assert proc.poll() is None, "AgentCore exited while its answer was still in flight"

        code = proc.wait(timeout=DRAIN_TIMEOUT + 10)
        took = time.monotonic() - signalled
        log = s.agentcore.log_text()
        assert code == 0, log
        assert took < DRAIN_TIMEOUT, f"drained in {took:.1f} s"
        assert "drained in" in log and "Traceback" not in log

        messages = [r.message for r in s.receiver.wait_final("conn-inflight", request_id, timeout=5)]
        answer = messages[-1]
        assert answer["type"] == "answer", messages
        assert "rubisco fixes carbon dioxide" in answer["text"]
        streamed = "".join(m["text"] for m in messages if m["type"] == "answerDelta")
        assert streamed.strip() == answer["text"].strip()
        assert answer["audio"], "the spoken sentences were finished too"
        assert s.receiver.of("conn-late") == []
        assert s.receiver.invalid == []
        print(f"drain: SIGTERM to exit 0 in {took:.2f} s (timeout {DRAIN_TIMEOUT:g} s)")


def test_drain_timeout_cuts_off_what_is_left_and_still_exits_0() -> None:
    timeout = 2.0
    with agentcore_rig(
        standin_args=["--first-token-seconds", "60"],
        agentcore_env={"SYNAPSCRIBE_DRAIN_TIMEOUT_SECONDS": str(timeout)},
    ) as s:
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        request_id = s.submit(
            OWNER, s.start_session(OWNER, lecture), "conn-slow", text="What does rubisco do?", voice=False
        )
        time.sleep(0.3)
        signalled = time.monotonic()
        s.agentcore.proc.send_signal(signal.SIGTERM)
        code = s.agentcore.proc.wait(timeout=timeout + 15)
        took = time.monotonic() - signalled
        assert code == 0, s.agentcore.log_text()
        assert timeout <= took < timeout + 8, took
        assert "drain timeout (2 s) passed with 1 still in flight" in s.agentcore.log_text()
        final = s.receiver.wait_final("conn-slow", request_id, timeout=5)[-1].message
        assert final["type"] == "error" and final["code"] == "busy", final


def test_a_second_sigterm_ends_the_drain_at_once() -> None:
    with agentcore_rig(
        standin_args=["--first-token-seconds", "60"],
        agentcore_env={"SYNAPSCRIBE_DRAIN_TIMEOUT_SECONDS": "60"},
    ) as s:
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        s.submit(
            OWNER, s.start_session(OWNER, lecture), "conn-slow", text="What does rubisco do?", voice=False
        )
        time.sleep(0.3)
        proc = s.agentcore.proc
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "the first SIGTERM only starts the drain"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, s.agentcore.log_text()
        assert time.monotonic() - signalled < 10


def test_diagnostics_over_loopback(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0, NVIDIA A10G, 23028, 17893, 41\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with agentcore_rig(agentcore_env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}) as s:
        gpu = httpx.get(s.agentcore.url + "/v1/diagnostics/gpu", timeout=10)
        assert gpu.status_code == 200, gpu.text
        assert gpu.json() == [
            {
                "index": 0,
                "name": "NVIDIA A10G",
                "memoryTotalMiB": 23028,
                "memoryUsedMiB": 17893,
                "utilizationPercent": 41,
            }
        ]
        metrics = httpx.get(s.agentcore.url + "/v1/diagnostics/metrics", timeout=10)
        assert metrics.status_code == 200, metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")
        assert s.standin_url is not None
        assert "vllm:" in metrics.text
        assert metrics.text.splitlines()[0] == httpx.get(s.standin_url + "/metrics").text.splitlines()[0]
        # What the load balancer path looks like: it always adds X-Forwarded-For.
        proxied = httpx.get(
            s.agentcore.url + "/v1/diagnostics/gpu", headers={"X-Forwarded-For": "10.0.0.9"}, timeout=10
        )
        assert proxied.status_code == 403 and diag.ONLY_LOCAL in proxied.text
