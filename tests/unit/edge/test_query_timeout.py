"""The edge's query hand-off timing out: exactly one final message whoever sends it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synapscribe import final_claim
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.websocket_handler import handle
from synapscribe.store import DEADLINES_ATTRIBUTE, FINALS_ATTRIBUTE

from .edge_support import AgentCoreRecorder, make_lecture, pushed, ws_event

TIMEOUT = 0.3


@pytest.fixture
def slow(deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch) -> AgentCoreRecorder:
    """AgentCore answering its 202 only after the edge's timeout; a connection and a session."""
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_timeout_seconds": TIMEOUT})
    )
    agentcore.delay = TIMEOUT + 0.5
    assert handle(ws_event("$connect", "c1", identity="alice"), deps)["statusCode"] == 200
    lecture_id = make_lecture(deps, "alice")
    deps.store.create_session("ses_timeout", "alice", lecture_id, "audio")
    return agentcore


def _query(deps: EdgeDeps, request_id: str | None) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"action": "query", "sessionId": "ses_timeout", "text": "hi", "voice": False}
    if request_id is not None:
        message["requestId"] = request_id
    assert handle(ws_event("$default", "c1", body=json.dumps(message)), deps)["statusCode"] == 200
    return pushed("c1")


def _finals(deps: EdgeDeps) -> dict[str, str]:
    conn = deps.store.get_connection("c1")
    assert conn is not None
    return dict(conn[FINALS_ATTRIBUTE])


@pytest.mark.parametrize("request_id", ["r-1", None])
def test_timeout_before_agentcore_started_sends_one_upstream_unavailable(
    deps: EdgeDeps, slow: AgentCoreRecorder, request_id: str | None
) -> None:
    out = _query(deps, request_id)
    assert len(out) == 1 and out[0]["type"] == "error" and out[0]["code"] == "upstream_unavailable"
    assert "did not answer in time" in out[0]["message"]
    assert out[0].get("requestId") == request_id
    job = slow.requests[-1][1]
    key = final_claim.key(job["requestId"], job["receivedAtMs"])
    assert _finals(deps) == {key: "edge"}
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[DEADLINES_ATTRIBUTE] == {}  # the edge answered: nothing to sweep
    # AgentCore starting the job late loses the claim and sends nothing (tests/unit/agentcore/test_final_claim.py).
    assert final_claim.claim(deps.store, "c1", key, "agentcore") is False


def test_timeout_after_agentcore_claimed_sends_nothing_from_the_edge(
    deps: EdgeDeps, slow: AgentCoreRecorder
) -> None:
    claims: list[bool] = []

    def agentcore_starts(job: dict[str, Any]) -> None:
        key = final_claim.key(job["requestId"], job["receivedAtMs"])
        claims.append(final_claim.claim(deps.store, job["connectionId"], key, "agentcore"))

    slow.on_job = agentcore_starts
    assert _query(deps, "r-2") == []
    assert claims == [True]
    job = slow.requests[-1][1]
    assert _finals(deps) == {final_claim.key("r-2", job["receivedAtMs"]): "agentcore"}


def test_a_failing_claim_still_tells_the_client(
    deps: EdgeDeps, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bool:
        raise RuntimeError("dynamodb unreachable")

    monkeypatch.setattr(final_claim, "claim", broken)
    out = _query(deps, "r-3")
    assert [m["code"] for m in out] == ["upstream_unavailable"] and out[0]["requestId"] == "r-3"
    # The hand-off's deadline is withdrawn, so the sweeper does not send a second error later.
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[DEADLINES_ATTRIBUTE] == {}


def test_an_unreachable_agentcore_is_not_claimed(
    deps: EdgeDeps, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused outright (not a timeout): AgentCore surely has not got the job, so no claim.
    from .edge_support import closed_port_url

    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()})
    )
    out = _query(deps, "r-4")
    assert [m["code"] for m in out] == ["upstream_unavailable"]
    assert _finals(deps) == {}


# --------------------------------------------------------------------------- warming from zero
# No healthy GPU host: the handler starts one and parks the question (edge/warming.py).


@pytest.fixture
def cold(slow: AgentCoreRecorder, deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An Auto Scaling group at zero on moto, and AgentCore unreachable (a closed port)."""
    import boto3

    from .edge_support import closed_port_url

    autoscaling = boto3.client("autoscaling")
    ec2 = boto3.client("ec2")
    name = f"fleet-{len(slow.requests)}-{id(deps) % 1000}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12c6146b"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": name},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        AvailabilityZones=["eu-west-1a"],
    )
    monkeypatch.setattr(
        deps,
        "settings",
        deps.settings.model_copy(update={"fleet_group": name, "agentcore_url": closed_port_url()}),
    )
    monkeypatch.setattr(deps, "autoscaling", autoscaling)
    slow.delay = 0.0
    yield name
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    ec2.delete_launch_template(LaunchTemplateName=name)


def _desired(deps: EdgeDeps, name: str) -> int:
    (group,) = deps.autoscaling_client().describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return int(group["DesiredCapacity"])


def test_no_healthy_host_starts_one_parks_the_question_and_says_warming(deps: EdgeDeps, cold: str) -> None:
    from synapscribe.store import WARMING_ATTRIBUTE

    out = _query(deps, "w-1")
    startup = deps.platform.fleet.host_startup_seconds
    assert [m["type"] for m in out] == ["warming"]
    assert out[0]["requestId"] == "w-1" and out[0]["estimatedSeconds"] == startup
    assert out[0]["waitSeconds"] == 2 * startup and f"about {startup} s" in out[0]["message"]
    assert _desired(deps, cold) == 1
    conn = deps.store.get_connection("c1")
    assert conn is not None
    (key,) = conn[WARMING_ATTRIBUTE]
    assert key.startswith("w-1@") and int(conn[WARMING_ATTRIBUTE][key]["until"]) > deps.store.now()
    assert key in deps.quotas.ledger("alice").jobs  # the question holds its slot while it waits
    # Idempotent and bounded: a second question leaves a group already starting (or larger) alone.
    deps.autoscaling_client().set_desired_capacity(AutoScalingGroupName=cold, DesiredCapacity=2)
    assert [m["type"] for m in _query(deps, "w-2")[1:]] == ["warming"]
    assert _desired(deps, cold) == 2


def test_the_sweeper_hands_the_parked_question_over_once_agentcore_answers(
    deps: EdgeDeps, cold: str, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapscribe.edge.sweeper import sweep
    from synapscribe.store import WARMING_ATTRIBUTE

    _query(deps, "w-3")
    assert sweep(deps).warmed == []  # still no host: kept for the next run
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_url": slow.url}))
    report = sweep(deps)
    assert len(report.warmed) == 1 and report.warmed[0].startswith("w-3@")
    path, job = slow.requests[-1]
    assert path == "/v1/queries" and job["requestId"] == "w-3" and job["text"] == "hi"
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[WARMING_ATTRIBUTE] == {}
    assert sweep(deps).warmed == [] and len(slow.requests) == 1  # handed over once


def test_a_parked_question_past_its_bound_gets_one_error(
    deps: EdgeDeps, cold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapscribe.edge.sweeper import sweep

    _query(deps, "w-4")
    later = deps.store.now() + 2 * deps.platform.fleet.host_startup_seconds + 1
    monkeypatch.setattr(deps.store, "_clock", lambda: later)
    report = sweep(deps)
    assert len(report.answered) == 1 and report.answered[0].startswith("w-4@")
    errors = [m for m in pushed("c1") if m["type"] == "error"]
    assert [(m["requestId"], m["code"]) for m in errors] == [("w-4", "upstream_unavailable")]
    assert "within" in errors[0]["message"]
    assert deps.quotas.ledger("alice").jobs == {}
    assert sweep(deps).answered == []  # exactly one error


def _cancel(deps: EdgeDeps, request_id: str) -> list[dict[str, Any]]:
    message = {"action": "cancel", "sessionId": "ses_timeout", "requestId": request_id}
    before = len(pushed("c1"))
    assert handle(ws_event("$default", "c1", body=json.dumps(message)), deps)["statusCode"] == 200
    return pushed("c1")[before:]


def test_a_parked_question_stopped_gets_one_stopped_answer_and_is_never_handed_over(
    deps: EdgeDeps, cold: str, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapscribe.edge import warming
    from synapscribe.edge.sweeper import sweep
    from synapscribe.store import WARMING_ATTRIBUTE

    assert [m["type"] for m in _query(deps, "w-6")] == ["warming"]
    (key,) = deps.store.get_connection("c1")[WARMING_ATTRIBUTE]  # type: ignore[index]
    # The sweeper's index read, made before the cancel (a stale read hands over nothing).
    before = list(warming._parked(deps))
    out = _cancel(deps, "w-6")
    assert [(m["type"], m["requestId"], m.get("stopped")) for m in out] == [("answer", "w-6", True)]
    assert out[0]["text"] == "" and out[0]["audio"] == [] and out[0]["timings"]["totalMs"] >= 0
    conn = deps.store.get_connection("c1")
    assert conn is not None and conn[WARMING_ATTRIBUTE] == {}
    assert _finals(deps) == {key: "edge"}  # AgentCore's claim of it would lose
    assert key not in deps.quotas.ledger("alice").jobs  # its job slot is back
    # The host is up now: the sweeper hands nothing over, neither from a fresh read nor a stale one.
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_url": slow.url}))
    assert sweep(deps).warmed == []
    monkeypatch.setattr(warming, "_parked", lambda d: iter(before))
    assert sweep(deps).warmed == []
    assert [path for path, _ in slow.requests if path == "/v1/queries"] == []
    # A second cancel sends nothing more: the question had its one final.
    assert _cancel(deps, "w-6") == []
    assert [m for m in pushed("c1") if m["type"] in ("answer", "error")] == out


def test_stopping_another_question_leaves_the_parked_one_waiting(
    deps: EdgeDeps, cold: str, slow: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapscribe.edge.sweeper import sweep
    from synapscribe.store import WARMING_ATTRIBUTE

    _query(deps, "w-7")
    assert _cancel(deps, "w-8") == []
    conn = deps.store.get_connection("c1")
    assert conn is not None and [k.split("@")[0] for k in conn[WARMING_ATTRIBUTE]] == ["w-7"]
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_url": slow.url}))
    report = sweep(deps)
    assert len(report.warmed) == 1 and report.warmed[0].startswith("w-7@")


def test_a_fleet_that_may_not_run_gets_a_clear_error(deps: EdgeDeps, cold: str) -> None:
    deps.autoscaling_client().update_auto_scaling_group(AutoScalingGroupName=cold, MaxSize=0)
    out = _query(deps, "w-5")
    assert [(m["type"], m["code"]) for m in out] == [("error", "upstream_unavailable")]
    assert "none can be started" in out[0]["message"]
    assert _desired(deps, cold) == 0


def test_the_balancers_own_503_is_no_host_not_busy() -> None:
    """An Application Load Balancer without registered targets answers 503 itself (Server:
    awselb/2.0; "Troubleshoot your Application Load Balancers", HTTP 503); AgentCore's own 503
    means busy."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from synapscribe.edge.agentcore_client import AgentCoreBusy, AgentCoreNoHost, post_job

    class Balancer(BaseHTTPRequestHandler):
        server_name = "awselb/2.0"

        def version_string(self) -> str:
            return self.server_name

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Balancer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(AgentCoreNoHost):
            post_job(url, "/v1/queries", {}, 2.0)
        Balancer.server_name = "uvicorn"
        with pytest.raises(AgentCoreBusy):
            post_job(url, "/v1/queries", {}, 2.0)
    finally:
        server.shutdown()
        server.server_close()


def test_warm_starts_a_night_are_counted_and_capped(
    deps: EdgeDeps, cold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host started from zero counts against the night's warm starts; over them the question
    gets `service_limit`, no host is started and its job slot comes back."""
    from synapscribe.ceilings import NIGHT_OFFSET_SECONDS, DailyCounters

    ceilings = deps.platform.ceilings.model_copy(update={"nightly_warm_starts": 1})
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"ceilings": ceilings}))
    assert [m["type"] for m in _query(deps, "n-1")] == ["warming"]
    counters = DailyCounters(deps.store.limits, deps.store.now)
    assert counters.value("warm_starts", NIGHT_OFFSET_SECONDS) == 1
    deps.autoscaling_client().set_desired_capacity(AutoScalingGroupName=cold, DesiredCapacity=0)
    out = _query(deps, "n-2")[1:]
    assert [(m["code"], m["requestId"]) for m in out] == [("service_limit", "n-2")]
    assert "server starts" in out[0]["message"]
    assert _desired(deps, cold) == 0
    assert not any(k.startswith("n-2@") for k in deps.quotas.ledger("alice").jobs)


def test_the_sweeper_accrues_gpu_host_hours_and_over_them_no_question_is_admitted(
    deps: EdgeDeps, cold: str, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synapscribe.ceilings import GPU_SECONDS, DailyCounters
    from synapscribe.edge.sweeper import sweep

    interval = deps.platform.sweeper.interval_seconds
    ceilings = deps.platform.ceilings.model_copy(update={"daily_gpu_host_hours": 2 * interval / 3600})
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"ceilings": ceilings}))
    clock = [deps.store.now()]
    monkeypatch.setattr(deps.store, "_clock", lambda: clock[0])
    counters = DailyCounters(deps.store.limits, deps.store.now)
    assert sweep(deps).gpu_host_seconds == 0  # the group holds no instance
    deps.autoscaling_client().set_desired_capacity(AutoScalingGroupName=cold, DesiredCapacity=2)
    clock[0] += interval
    assert sweep(deps).gpu_host_seconds == 2 * interval  # two hosts for one interval
    assert sweep(deps).gpu_host_seconds == 0  # the same instant is not counted twice
    assert counters.value(GPU_SECONDS) == 2 * interval
    # The ceiling is reached: a question gets service_limit and AgentCore is not asked.
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_url": agentcore.url}))
    out = _query(deps, "g-1")
    assert [(m["code"], m["requestId"]) for m in out] == [("service_limit", "g-1")]
    assert "hours" in out[0]["message"] and agentcore.requests == []
