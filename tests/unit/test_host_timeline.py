"""The host's start-up timeline: IMDSv2, readiness probes on loopback servers, ordering, EMF lines."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from synapscribe import host_timeline as ht
from synapscribe.agentcore.settings import EMF_LOG_GROUP_VARIABLE
from synapscribe.platform import load_platform

IDENTITY = {
    "instanceId": "i-0123456789abcdef0",
    "instanceType": "g5.2xlarge",
    "pendingTime": "2026-12-02T07:00:00Z",
}


@pytest.fixture
def server() -> Iterator[dict[str, Any]]:
    """One loopback server playing IMDS (IMDSv2: token required), vLLM and AgentCore; `state` steers it."""
    state: dict[str, Any] = {"healthy": False, "models": [], "ready": False, "token_puts": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                state["token_puts"] += 1
                self._send(200, b"TOKEN")
            else:
                self._send(400, b"")

        def do_GET(self) -> None:
            if self.path == "/latest/dynamic/instance-identity/document":
                ok = self.headers.get("X-aws-ec2-metadata-token") == "TOKEN"
                self._send(200 if ok else 401, IDENTITY if ok else b"")
            elif self.path == "/health":
                self._send(200 if state["healthy"] else 503, {})
            elif self.path == "/v1/models":
                self._send(200, {"data": [{"id": m} for m in state["models"]]})
            elif self.path == "/ready":
                self._send(200 if state["ready"] else 503, {"ready": state["ready"]})
            else:
                self._send(404, b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_identity_through_an_imdsv2_token(server: dict[str, Any]) -> None:
    assert ht.instance_identity(server["url"]) == IDENTITY
    assert server["token_puts"] == 1


def test_no_imds_is_no_identity() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    assert ht.instance_identity(f"http://127.0.0.1:{port}", timeout=0.5) is None


def test_probes_record_each_step_when_it_first_answers(server: dict[str, Any]) -> None:
    model = load_platform().model.served_name
    prober = ht.Prober(server["url"], server["url"], model)
    prober.check(10.0)
    assert prober.seen == {}
    server["healthy"] = True
    prober.check(11.0)
    assert prober.seen == {"vllm:listening": 11.0}
    server["models"] = ["another-model"]
    prober.check(12.0)
    assert "vllm:model_listed" not in prober.seen
    server["models"] = [model]
    prober.check(13.0)
    server["ready"] = True
    prober.check(14.0)
    prober.check(15.0)  # later answers do not move a step
    assert prober.seen == {"vllm:listening": 11.0, "vllm:model_listed": 13.0, "agentcore:ready": 14.0}
    assert prober.done()


def test_a_step_is_never_recorded_before_the_one_it_needs(server: dict[str, Any]) -> None:
    """Under load vLLM's /health can time out on a poll where AgentCore's /ready answers: the
    timeline must still show vLLM listening before AgentCore ready (the host test checks the order)."""
    model = load_platform().model.served_name
    prober = ht.Prober(server["url"], server["url"], model)
    server["ready"] = True
    server["models"] = [model]
    prober.check(20.0)  # /health not answering yet
    assert prober.seen == {}
    server["healthy"] = True
    prober.check(21.0)
    assert prober.seen == {"vllm:listening": 21.0, "vllm:model_listed": 21.0, "agentcore:ready": 21.0}


def test_systemd_steps_read_monotonic_microseconds_and_skip_what_never_happened() -> None:
    shown: list[list[str]] = []

    def show(args: list[str]) -> dict[str, str]:
        shown.append(args)
        if args[-1] == "synapscribe-vllm":
            return {"InactiveExitTimestampMonotonic": "70000000", "ActiveEnterTimestampMonotonic": "0"}
        if args[-1] == "synapscribe-agentcore":
            return {"InactiveExitTimestampMonotonic": "72500000", "ActiveEnterTimestampMonotonic": "72600000"}
        return {"UserspaceTimestampMonotonic": "4200000"}

    steps = ht.systemd_steps(["synapscribe-vllm", "synapscribe-agentcore"], show)
    assert steps == {
        "kernel_done": 4.2,
        "synapscribe-vllm:started": 70.0,
        "synapscribe-agentcore:started": 72.5,
        "synapscribe-agentcore:active": 72.6,
    }
    assert shown[0] == ["-p", "UserspaceTimestampMonotonic"]


def test_timeline_is_ordered_and_measured_from_the_launch() -> None:
    # Monotonic 100 s is wall 07:02:00; the instance was launched at 07:00:00.
    now_wall = dt.datetime(2026, 12, 2, 7, 2, 0, tzinfo=dt.UTC)
    steps = {"agentcore:ready": 95.0, "kernel_done": 20.0, "vllm:listening": 60.0, "vllm:model_listed": 90.0}
    t = ht.build_timeline(steps, IDENTITY, now_monotonic=100.0, now_wall=now_wall)
    assert t["origin"] == "launch" and t["originAt"] == "2026-12-02T07:00:00.000Z"
    assert [s["step"] for s in t["steps"]] == [
        "kernel_done",
        "vllm:listening",
        "vllm:model_listed",
        "agentcore:ready",
    ]
    assert [s["seconds"] for s in t["steps"]] == [40.0, 80.0, 110.0, 115.0]
    assert t["steps"][-1]["at"] == "2026-12-02T07:01:55.000Z"
    assert t["missing"] == []
    docs = ht.emf_documents(t, "/synapscribe/dev/gpu/agentcore-metrics")
    assert len(docs) == 4
    last = docs[-1]
    assert last["Step"] == "agentcore:ready" and last[ht.METRIC] == 115.0
    assert last["InstanceId"] == IDENTITY["instanceId"]
    directive = last["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["Step"]] and directive["Metrics"] == [
        {"Name": ht.METRIC, "Unit": "Seconds"}
    ]
    assert last["_aws"]["LogGroupName"] == "/synapscribe/dev/gpu/agentcore-metrics"


def test_without_imds_the_origin_is_the_kernel_and_no_metric_is_sent() -> None:
    now_wall = dt.datetime(2026, 12, 2, 7, 2, 0, tzinfo=dt.UTC)
    t = ht.build_timeline(
        {"kernel_done": 20.0, "vllm:listening": 30.0}, None, now_monotonic=100.0, now_wall=now_wall
    )
    assert t["origin"] == "kernel_done" and [s["seconds"] for s in t["steps"]] == [0.0, 10.0]
    assert t["missing"] == ["vllm:model_listed", "agentcore:ready"]
    assert ht.emf_documents(t, "/g") == []
    with pytest.raises(ValueError, match="launch time"):
        ht.build_timeline({"vllm:listening": 30.0}, None, now_monotonic=100.0, now_wall=now_wall)


def test_main_writes_the_timeline_and_sends_one_emf_line_per_step(
    server: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform = load_platform()
    server.update(healthy=True, models=[platform.model.served_name], ready=True)
    port = int(server["url"].rsplit(":", 1)[1])
    # The stand-in server answers on vLLM's and AgentCore's ports in the test.
    monkeypatch.setattr(
        ht,
        "load_platform",
        lambda: platform.model_copy(
            update={"ports": platform.ports.model_copy(update={"vllm": port, "agentcore": port})}
        ),
    )
    monkeypatch.setattr(
        ht,
        "systemctl_show",
        lambda args: {"UserspaceTimestampMonotonic": "1000000"} if len(args) == 2 else {},
    )
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    out = tmp_path / "run" / "timeline.json"
    # The environment's metrics group, as the launch template's user data writes it.
    group = platform.fleet.log_groups.names("dev")["metrics"]
    deploy_env = tmp_path / "deploy.env"
    deploy_env.write_text(f"AWS_REGION=eu-west-1\n{EMF_LOG_GROUP_VARIABLE}={group}\n")
    monkeypatch.delenv(EMF_LOG_GROUP_VARIABLE, raising=False)
    rc = ht.main(
        [
            "--unit", "synapscribe-vllm",
            "--out", str(out),
            "--timeout", "5",
            "--agentcore-host", "127.0.0.1",
            "--imds-url", server["url"],
            "--emf-port", str(receiver.getsockname()[1]),
            "--deploy-env", str(deploy_env),
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    timeline = json.loads(out.read_text())
    names = [s["step"] for s in timeline["steps"]]
    assert names[0] == "kernel_done" and set(ht.PROBES) <= set(names)
    seconds = [s["seconds"] for s in timeline["steps"]]
    assert seconds == sorted(seconds)
    lines = [json.loads(receiver.recv(65536)) for _ in names]
    receiver.close()
    assert [line["Step"] for line in lines] == names
    assert {line["_aws"]["LogGroupName"] for line in lines} == {group}
    assert json.loads(capsys.readouterr().out) == timeline


def test_the_metrics_group_is_read_from_the_deploy_environment_when_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit may start before the user data writes the file: the file read at send time wins,
    the unit's environment is the fallback, and neither means no group (nothing is sent)."""
    deploy_env = tmp_path / "deploy.env"
    monkeypatch.delenv(EMF_LOG_GROUP_VARIABLE, raising=False)
    assert ht.metrics_log_group(deploy_env) is None
    monkeypatch.setenv(EMF_LOG_GROUP_VARIABLE, "/synapscribe/old/gpu/agentcore-metrics")
    assert ht.metrics_log_group(deploy_env) == "/synapscribe/old/gpu/agentcore-metrics"
    deploy_env.write_text(
        f"# written at boot\nAWS_REGION=eu-west-1\n{EMF_LOG_GROUP_VARIABLE}=/synapscribe/prod/gpu/agentcore-metrics\n"
    )
    assert ht.metrics_log_group(deploy_env) == "/synapscribe/prod/gpu/agentcore-metrics"


def test_main_reports_what_was_never_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    platform = load_platform()
    monkeypatch.setattr(
        ht,
        "load_platform",
        lambda: platform.model_copy(
            update={"ports": platform.ports.model_copy(update={"vllm": closed, "agentcore": closed})}
        ),
    )
    monkeypatch.setattr(ht, "systemctl_show", lambda args: {"UserspaceTimestampMonotonic": "1000000"})
    monkeypatch.setattr(ht, "POLL_SECONDS", 0.1)
    out = tmp_path / "timeline.json"
    rc = ht.main(
        [
            "--out",
            str(out),
            "--timeout",
            "0.3",
            "--agentcore-host",
            "127.0.0.1",
            "--imds-url",
            f"http://127.0.0.1:{closed}",
        ]
    )
    assert rc == 1
    assert (
        "not seen within 0.3 s: vllm:listening, vllm:model_listed, agentcore:ready" in capsys.readouterr().err
    )
    assert json.loads(out.read_text())["origin"] == "kernel_done"
