"""The GPU host's start-up timeline: each step from the instance's launch to AgentCore's /ready.

Run once per boot by `synapscribe-startup-timeline.service` (ansible/roles/agentcore), alongside the
units it watches: `python -m synapscribe.host_timeline --unit <vLLM unit> --unit ...` (platform.yaml host.units).

Steps, each with its time since the instance's launch:
- `kernel_done`: systemd's UserspaceTimestampMonotonic (the kernel and initrd are done);
- `<unit>:started` / `<unit>:active`: each unit's InactiveExitTimestampMonotonic (its start began)
  and ActiveEnterTimestampMonotonic (for vLLM: after its ExecStartPost saw the model listed);
- `vllm:listening` (vLLM's /health answers 200), `vllm:model_listed` (/v1/models names the served
  model) and `agentcore:ready` (AgentCore's /ready answers 200): seen by polling every
  `POLL_SECONDS`, so each is late by at most that.

systemd's *Monotonic properties are CLOCK_MONOTONIC in microseconds (systemd.exec(5),
org.freedesktop.systemd1(5)), the clock `time.monotonic()` reads on Linux, so every step is placed
on the wall clock through one (monotonic, wall) pair read here. The launch time is the instance
identity document's `pendingTime` ("The date and time that the instance was launched", Amazon EC2
User Guide, "Instance identity documents"), read with an IMDSv2 session token. Without IMDS (a
test host) the origin is `kernel_done` and no metric is sent.

Output: the timeline as JSON (`--out`, in /run: never baked into an AMI) and on stdout (the
journal), and one embedded-metric-format document per step (metric `HostStartupSeconds`, dimension
`Step`, the instance id as a property) to the CloudWatch agent's EMF listener (platform.yaml
fleet.emf_port), which stores it in the environment's metrics log group (SYNAPSCRIBE_EMF_LOG_GROUP
in the deploy environment file) where `synapscribe bench full` reads it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from synapscribe.agentcore.settings import EMF_LOG_GROUP_VARIABLE
from synapscribe.platform import PlatformConfig, load_platform

NAMESPACE = "SynapScribe/Host"
METRIC = "HostStartupSeconds"
#: The compute stack's output naming the metrics log group these EMF documents land in
#: (cdk/synapscribe_cdk/stacks/compute.py writes it; `bench full`'s cold-start table reads it).
METRICS_LOG_GROUP_OUTPUT = "MetricsLogGroupName"
IMDS_URL = "http://169.254.169.254"
POLL_SECONDS = 1.0
#: The steps seen by polling (the rest come from systemd).
PROBES = ("vllm:listening", "vllm:model_listed", "agentcore:ready")
#: The order the chain must keep on any host (each needs the one before it).
CHAIN = ("kernel_done", "vllm:listening", "vllm:model_listed", "agentcore:ready")

Show = Callable[[list[str]], dict[str, str]]


def systemctl_show(args: list[str]) -> dict[str, str]:
    """`systemctl show -p A -p B [UNIT]` as a mapping."""
    out = subprocess.run(["systemctl", "show", *args], capture_output=True, text=True, check=True, timeout=10)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def _usec(value: str | None) -> float | None:
    """A *Monotonic property (µs) in seconds; 0 or absent means it never happened."""
    if not value or not value.isdigit() or int(value) == 0:
        return None
    return int(value) / 1e6


def systemd_steps(units: list[str], show: Show | None = None) -> dict[str, float]:
    """Monotonic seconds of the manager's and each unit's transitions (those that happened)."""
    show = show or systemctl_show
    steps: dict[str, float] = {}
    manager = show(["-p", "UserspaceTimestampMonotonic"])
    if (t := _usec(manager.get("UserspaceTimestampMonotonic"))) is not None:
        steps["kernel_done"] = t
    for unit in units:
        props = show(["-p", "InactiveExitTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic", unit])
        if (t := _usec(props.get("InactiveExitTimestampMonotonic"))) is not None:
            steps[f"{unit}:started"] = t
        if (t := _usec(props.get("ActiveEnterTimestampMonotonic"))) is not None:
            steps[f"{unit}:active"] = t
    return steps


def instance_identity(imds_url: str = IMDS_URL, timeout: float = 2.0) -> dict[str, Any] | None:
    """The instance identity document through IMDSv2 (a session token first), or None off EC2."""
    try:
        # No proxy: IMDS answers only on the instance itself.
        with httpx.Client(base_url=imds_url, timeout=timeout, trust_env=False) as imds:
            token = imds.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            token.raise_for_status()
            doc = imds.get(
                "/latest/dynamic/instance-identity/document",
                headers={"X-aws-ec2-metadata-token": token.text},
            )
            doc.raise_for_status()
            document = doc.json()
    except (httpx.HTTPError, ValueError):
        return None
    return document if isinstance(document, dict) and "pendingTime" in document else None


def default_agentcore_host() -> str:
    """The address AgentCore binds (agentcore-start): the source address of the default route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        return str(s.getsockname()[0])


def _get(url: str) -> tuple[int, bytes]:
    try:
        response = httpx.get(url, timeout=3, trust_env=False)
    except httpx.HTTPError:
        return 0, b""
    return response.status_code, response.content


def _model_listed(body: bytes, model: str) -> bool:
    try:
        return model in [m.get("id") for m in json.loads(body).get("data", [])]
    except (ValueError, AttributeError):
        return False


@dataclass
class Prober:
    """Polls the three readiness probes; records the monotonic time each first succeeds."""

    vllm_url: str
    agentcore_url: str
    served_model: str
    seen: dict[str, float] = field(default_factory=dict)

    def check(self, now: float) -> None:
        # Each probe is asked only once the one before it has answered: AgentCore's /ready needs the
        # model listed, which needs vLLM listening, so a probe that timed out under load (/health
        # has a 3 s limit) must not let a later step be recorded before an earlier one.
        if "vllm:listening" not in self.seen and _get(f"{self.vllm_url}/health")[0] == 200:
            self.seen["vllm:listening"] = now
        if "vllm:listening" in self.seen and "vllm:model_listed" not in self.seen:
            status, body = _get(f"{self.vllm_url}/v1/models")
            if status == 200 and _model_listed(body, self.served_model):
                self.seen["vllm:model_listed"] = now
        ready_url = f"{self.agentcore_url}/ready"
        if (
            "vllm:model_listed" in self.seen
            and "agentcore:ready" not in self.seen
            and _get(ready_url)[0] == 200
        ):
            self.seen["agentcore:ready"] = now

    def done(self) -> bool:
        return all(p in self.seen for p in PROBES)

    def run(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        deadline = clock() + timeout
        while True:
            self.check(clock())
            if self.done() or clock() >= deadline:
                return
            time.sleep(POLL_SECONDS)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_timeline(
    steps: dict[str, float],
    identity: dict[str, Any] | None,
    *,
    now_monotonic: float,
    now_wall: dt.datetime,
) -> dict[str, Any]:
    """The timeline document: steps in time order, each on the wall clock and since the origin."""
    launch = dt.datetime.fromisoformat(identity["pendingTime"].replace("Z", "+00:00")) if identity else None
    if launch is None and "kernel_done" not in steps:
        raise ValueError("neither the launch time (IMDS) nor systemd's userspace timestamp is known")
    origin_wall = launch or now_wall - dt.timedelta(seconds=now_monotonic - steps["kernel_done"])
    ordered = []
    for name, mono in sorted(steps.items(), key=lambda kv: kv[1]):
        at = now_wall - dt.timedelta(seconds=now_monotonic - mono)
        ordered.append(
            {"step": name, "at": _iso(at), "seconds": round((at - origin_wall).total_seconds(), 3)}
        )
    return {
        "origin": "launch" if launch else "kernel_done",
        "originAt": _iso(origin_wall),
        "instanceId": identity.get("instanceId") if identity else None,
        "instanceType": identity.get("instanceType") if identity else None,
        "steps": ordered,
        "missing": [p for p in PROBES if p not in steps],
    }


def emf_documents(timeline: dict[str, Any], log_group: str) -> list[dict[str, Any]]:
    """One EMF document per step (dimension Step; instance id and type as searchable properties).
    None unless the origin is the launch: seconds since a container's start are no start-up time."""
    if timeline["origin"] != "launch":
        return []
    docs = []
    for step in timeline["steps"]:
        at = dt.datetime.fromisoformat(step["at"].replace("Z", "+00:00"))
        docs.append(
            {
                "_aws": {
                    "Timestamp": int(at.timestamp() * 1000),
                    "LogGroupName": log_group,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": [["Step"]],
                            "Metrics": [{"Name": METRIC, "Unit": "Seconds"}],
                        }
                    ],
                },
                "Step": step["step"],
                METRIC: step["seconds"],
                "InstanceId": timeline["instanceId"],
                "InstanceType": timeline["instanceType"],
                "LaunchTime": timeline["originAt"],
            }
        )
    return docs


def send_emf(docs: list[dict[str, Any]], port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for doc in docs:
            s.sendto(json.dumps(doc, separators=(",", ":")).encode() + b"\n", ("127.0.0.1", port))


def metrics_log_group(deploy_env: Path) -> str | None:
    """This environment's metrics log group, SYNAPSCRIBE_EMF_LOG_GROUP, read from the deploy
    environment file when the timeline is sent: the user data writes that file during this boot,
    possibly after systemd started this unit (and read its EnvironmentFile). Else the environment's."""
    try:
        text = deploy_env.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == EMF_LOG_GROUP_VARIABLE and value.strip():
            return value.strip()
    return os.environ.get(EMF_LOG_GROUP_VARIABLE) or None


def record(args: argparse.Namespace, platform: PlatformConfig) -> dict[str, Any]:
    # As agentcore-start chooses it: the deploy environment's SYNAPSCRIBE_AGENTCORE_HOST, else the
    # default route's.
    host = args.agentcore_host or os.environ.get("SYNAPSCRIBE_AGENTCORE_HOST") or default_agentcore_host()
    prober = Prober(
        vllm_url=f"http://127.0.0.1:{platform.ports.vllm}",
        agentcore_url=f"http://{host}:{platform.ports.agentcore}",
        served_model=platform.model.served_name,
    )
    prober.run(args.timeout)
    identity = instance_identity(args.imds_url)
    steps = {**systemd_steps(args.unit), **prober.seen}
    timeline = build_timeline(
        steps, identity, now_monotonic=time.monotonic(), now_wall=dt.datetime.now(dt.UTC)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(timeline, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    log_group = metrics_log_group(args.deploy_env)
    if log_group is not None:
        send_emf(emf_documents(timeline, log_group), args.emf_port)
    elif timeline["origin"] == "launch":  # an instance whose metrics would have been sent
        print(
            f"host_timeline: no {EMF_LOG_GROUP_VARIABLE} in {args.deploy_env}: no metric sent",
            file=sys.stderr,
        )
    return timeline


def main(argv: list[str] | None = None) -> int:
    platform = load_platform()
    parser = argparse.ArgumentParser(
        prog="python -m synapscribe.host_timeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--unit", action="append", default=[], help="a systemd unit to time (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the timeline JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(platform.vllm.start_timeout_seconds),
        help="give up polling after this many seconds (default: vllm.start_timeout_seconds)",
    )
    parser.add_argument("--agentcore-host", help="AgentCore's address (default: the default route's source)")
    parser.add_argument("--imds-url", default=IMDS_URL, help=argparse.SUPPRESS)
    parser.add_argument(
        "--emf-port",
        type=int,
        default=platform.fleet.emf_port,
        help="the CloudWatch agent's EMF listener on loopback (default: fleet.emf_port)",
    )
    parser.add_argument(
        "--deploy-env",
        type=Path,
        default=Path(platform.host.deploy_env_file),
        help="the deploy environment file naming the metrics log group (default: host.deploy_env_file)",
    )
    args = parser.parse_args(argv)
    timeline = record(args, platform)
    print(json.dumps(timeline))
    missing = timeline["missing"]
    if missing:
        print(f"host_timeline: not seen within {args.timeout:g} s: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
