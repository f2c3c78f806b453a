"""bench full's cold-start table: launch to ready, from the group's activity and the hosts' timelines.

Two sources, joined by instance id:
- the Auto Scaling group's scaling activities (`describe_scaling_activities`): a launch's
  StartTime (the group decided to launch) and EndTime (the instance is InService). Its
  Description reads "Launching a new EC2 instance: i-…" (Amazon EC2 Auto Scaling User Guide,
  "Verify a scaling activity for an Auto Scaling group");
- each host's start-up timeline (synapscribe.host_timeline), whose EMF documents the CloudWatch
  agent stores in the environment's metrics log group (platform.yaml fleet.log_groups.metrics with
  the environment's name; the compute stack's MetricsLogGroupName output): seconds from the launch
  (the instance's pendingTime) to each step, up to AgentCore's /ready.

The figure the warming estimate, the health-check grace and the cooldowns plan with is
fleet.host_startup_seconds: it is each row's target, so the report says whether the estimate holds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapscribe.host_timeline import CHAIN, METRIC, METRICS_LOG_GROUP_OUTPUT
from synapscribe.platform import load_platform

from synapscribe_ops.bench.report import Table

LAUNCH = re.compile(r"^Launching a new EC2 instance: (i-[0-9a-f]+)")
GROUP_OUTPUT = "autoscalinggroupname"
#: The host timeline's steps shown, in the chain's order (the first, kernel_done, as boot).
SHOWN_STEPS = CHAIN


@dataclass(frozen=True)
class Launch:
    instance_id: str
    start: dt.datetime
    end: dt.datetime | None
    status: str


def output_from(path: Path, name: str) -> str | None:
    """The first stack output whose key ends in `name` (any case) in `cdk deploy --outputs-file` JSON."""
    document = json.loads(path.read_text(encoding="utf-8"))
    for value in document.values():
        if isinstance(value, dict):
            for key, output in value.items():
                if key.lower().endswith(name.lower()):
                    return str(output)
    return None


def group_name_from_outputs(path: Path) -> str | None:
    """The compute stack's AutoScalingGroupName output in `cdk deploy --outputs-file` JSON."""
    return output_from(path, GROUP_OUTPUT)


def metrics_log_group(stack_outputs: Path | None, environment: str | None) -> str | None:
    """The environment's metrics log group: the compute stack's MetricsLogGroupName output, else
    platform.yaml's name template filled in with `environment` (the name CDK gives the group)."""
    if stack_outputs is not None:
        found = output_from(stack_outputs, METRICS_LOG_GROUP_OUTPUT)
        if found is not None:
            return found
    if environment is not None:
        return load_platform().fleet.log_groups.names(environment)["metrics"]
    return None


def launches(autoscaling: Any, group: str, since: dt.datetime) -> list[Launch]:
    """The group's instance launches that started at or after `since` (newest first, as AWS lists them)."""
    found: list[Launch] = []
    pages = autoscaling.get_paginator("describe_scaling_activities").paginate(AutoScalingGroupName=group)
    for page in pages:
        for activity in page["Activities"]:
            match = LAUNCH.match(activity.get("Description", ""))
            if match is None or activity["StartTime"] < since:
                continue
            found.append(
                Launch(match.group(1), activity["StartTime"], activity.get("EndTime"), activity["StatusCode"])
            )
    return found


def host_timelines(logs: Any, log_group: str, since: dt.datetime) -> dict[str, dict[str, Any]]:
    """instance id -> {"launch": pendingTime, "steps": {step: seconds since launch}} from the EMF lines."""
    timelines: dict[str, dict[str, Any]] = {}
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=log_group, startTime=int(since.timestamp() * 1000), filterPattern=f'"{METRIC}"'
    )
    for page in pages:
        for event in page["events"]:
            try:
                doc = json.loads(event["message"])
                instance, step, seconds = doc["InstanceId"], doc["Step"], float(doc[METRIC])
            except (ValueError, KeyError, TypeError):
                continue  # another EMF document in the same group
            entry = timelines.setdefault(instance, {"launch": doc.get("LaunchTime"), "steps": {}})
            entry["steps"][step] = seconds
    return timelines


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def cold_start_table(
    found: list[Launch], timelines: dict[str, dict[str, Any]], expected_seconds: int
) -> Table:
    table = Table(
        "cold_start",
        "Cold start: launch to ready",
        "Each instance the group launched in the window: the scaling activity's start to InService, "
        "and the host's own timeline (seconds from the instance's launch) to each step up to "
        "AgentCore's /ready. Target: platform.yaml fleet.host_startup_seconds, the figure the "
        "warming estimate, health-check grace and cooldowns plan with.",
        extra_columns=["instances"],
    )
    in_service = table.row("scaling activity: start to InService", target=float(expected_seconds))
    decision = table.row("scaling activity start to AgentCore ready", target=float(expected_seconds))
    steps = {s: table.row(f"launch to {s} (host timeline)") for s in SHOWN_STEPS}
    steps[CHAIN[-1]].target = float(expected_seconds)
    for launch in found:
        if launch.status == "Successful" and launch.end is not None:
            in_service.samples.append((launch.end - launch.start).total_seconds())
        timeline = timelines.get(launch.instance_id)
        if timeline is None:
            continue
        for step, row in steps.items():
            if step in timeline["steps"]:
                row.samples.append(timeline["steps"][step])
        launched = _parse_time(timeline["launch"])
        if launched is not None and CHAIN[-1] in timeline["steps"]:
            ready = launched + dt.timedelta(seconds=timeline["steps"][CHAIN[-1]])
            decision.samples.append((ready - launch.start).total_seconds())
    for row in table.rows:
        row.extra["instances"] = str(len(row.samples))
    without = [launch.instance_id for launch in found if launch.instance_id not in timelines]
    if without:
        in_service.note = f"no host timeline for {', '.join(without[:5])}" + (
            " …" if len(without) > 5 else ""
        )
    if not found:
        in_service.note = "no launch in the window"
    return table


def read_cold_start(
    session: Any, group: str, log_group: str, since: dt.datetime, expected_seconds: int
) -> Table:
    """The table from AWS (boto3 session): the group's launches and the hosts' timelines."""
    found = launches(session.client("autoscaling"), group, since)
    return cold_start_table(found, host_timelines(session.client("logs"), log_group, since), expected_seconds)
