"""Warming from zero: a question that finds no healthy GPU host starts one and waits for it.

The WebSocket handler's hand-off fails with AgentCoreUnavailable (connection refused, or the
balancer's own 503: no registered target). Then, when the handler knows the fleet's Auto Scaling
group (SYNAPSCRIBE_FLEET_GROUP):

1. `start_one` raises the group's desired capacity to 1 if it is 0: idempotent (a group already
   at 1 or more is left alone, so a starting host is never scaled in) and bounded (never above 1,
   never above the group's MaxSize; a group whose MaxSize is 0 is not started).
2. `park` keeps the question's job on its connection item (`warmingJobs`, keyed like `finals`)
   with a deadline `bound_seconds` ahead, and the client gets `warming` with the estimate, the
   platform's `fleet.host_startup_seconds` (one place).
3. The scheduled sweeper (edge/sweeper.py) hands each parked job to AgentCore on every run; the
   first run that AgentCore accepts it takes the record off. Past the deadline, the sweeper
   claims the question's final and sends `upstream_unavailable`. The final-claim protocol
   (final_claim.py) makes a repeated hand-off harmless: a job is answered at most once.
4. A `cancel` of a parked question (edge/interrupt.py) takes its record (`take`, the write the
   sweeper's hand-off makes too: one of them wins) and claims its final: it is never handed over,
   and the edge sends its one final, an `answer` with `stopped`.

A Lambda cannot wait the minutes a GPU host needs, so the waiting is DynamoDB's and the sweeper's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from synapscribe import final_claim
from synapscribe.contract import ErrorCode, ErrorMessage
from synapscribe.edge.agentcore_client import AgentCoreError, post_job
from synapscribe.edge.push import push
from synapscribe.platform import PlatformConfig
from synapscribe.store import SWEEP_ANSWER, SWEEP_ATTRIBUTE, WARMING_ATTRIBUTE, Store, from_dynamo

if TYPE_CHECKING:
    from synapscribe.edge.config import EdgeDeps

log = logging.getLogger(__name__)

#: The bound, in host start-ups: the estimate is a typical figure (a lazily restored root volume
#: varies), so twice it; a host that is not ready by then is not coming (no spot capacity, a bad
#: AMI): the NoHealthyHosts alarm tells the operators.
BOUND_STARTUPS = 2


def estimate_seconds(platform: PlatformConfig) -> int:
    return platform.fleet.host_startup_seconds


def bound_seconds(platform: PlatformConfig) -> int:
    return BOUND_STARTUPS * platform.fleet.host_startup_seconds


def start_one(autoscaling: Any, group_name: str, admit: Callable[[], None] | None = None) -> bool:
    """Desired capacity to at least 1. False when the group may run no instance (MaxSize 0).
    `admit` is called only when a host is really started from zero: it counts the night's warm
    starts (ceilings.ServiceCeilings.admit_warm_start) and raises ServiceLimit over them."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        raise LookupError(f"Auto Scaling group {group_name!r} not found")
    group = groups[0]
    if int(group["DesiredCapacity"]) >= 1:
        return True
    if int(group["MaxSize"]) < 1:
        return False
    if admit is not None:
        admit()
    # HonorCooldown off: a student is waiting, and only a group at zero gets here.
    autoscaling.set_desired_capacity(AutoScalingGroupName=group_name, DesiredCapacity=1, HonorCooldown=False)
    log.warning("no healthy GPU host: Auto Scaling group %s started (desired capacity 1)", group_name)
    return True


def billed_hosts(autoscaling: Any, group_name: str) -> int:
    """The group's instances: each is billed from launch to termination, in service or not."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    return len(groups[0].get("Instances", [])) if groups else 0


def park(store: Store, connection_id: str, key: str, job: dict[str, Any], until: int) -> bool:
    """Keep `job` on its connection item until `until`. False when the connection is gone."""
    record = {"until": until, "job": json.dumps(job, separators=(",", ":"))}
    update: dict[str, Any] = {
        # In the sweeper's sparse index from now on (store.SWEEP_INDEXES), as an answer deadline is.
        "UpdateExpression": "SET #w.#k = :rec, #sd = :due",
        "ConditionExpression": "attribute_exists(connectionId)",
        "ExpressionAttributeNames": {"#w": WARMING_ATTRIBUTE, "#k": key, "#sd": SWEEP_ATTRIBUTE},
        "ExpressionAttributeValues": {":rec": record, ":due": SWEEP_ANSWER},
    }
    try:
        return store.update_connection(connection_id, **update)
    except ClientError as exc:
        # The item has no map yet: a nested SET needs its parent (DynamoDB ValidationException).
        if exc.response["Error"]["Code"] != "ValidationException":
            raise
    store.update_connection(
        connection_id,
        UpdateExpression="SET #w = if_not_exists(#w, :empty)",
        ConditionExpression="attribute_exists(connectionId)",
        ExpressionAttributeNames={"#w": WARMING_ATTRIBUTE},
        ExpressionAttributeValues={":empty": {}},
    )
    return store.update_connection(connection_id, **update)


def take(store: Store, connection_id: str, key: str) -> bool:
    """Remove a parked job; True for exactly one caller (overlapping sweeper runs)."""
    return store.update_connection(
        connection_id,
        UpdateExpression="REMOVE #w.#k",
        ConditionExpression="attribute_exists(#w.#k)",
        ExpressionAttributeNames={"#w": WARMING_ATTRIBUTE, "#k": key},
    )


def still_parked(store: Store, connection_id: str, key: str) -> bool:
    """The job is parked now (a consistent read of its connection item)."""
    item = store.get_connection(connection_id) or {}
    return key in (item.get(WARMING_ATTRIBUTE) or {})


# --------------------------------------------------------------------------- the sweeper's part


@dataclass
class Handed:
    #: Parked questions AgentCore accepted this run, as `<requestId>@<receivedAtMs>`.
    handed_over: list[str] = field(default_factory=list)
    #: Parked questions past their bound, answered `upstream_unavailable`.
    timed_out: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _parked(deps: EdgeDeps) -> Iterator[dict[str, Any]]:
    """Connections with parked questions: from the sweeper's sparse index (a Query, never a Scan;
    the sweeper's role has no Scan), where a parked question puts its connection."""
    for item in deps.store.sweep_candidates(deps.store.connections, SWEEP_ANSWER):
        if item.get(WARMING_ATTRIBUTE):
            yield item


def hand_over_parked(deps: EdgeDeps, now: int, budget: int) -> Handed:
    """Each parked question: to AgentCore if it takes it now, an error past its bound, else kept."""
    done = Handed()
    for raw in _parked(deps):
        item = from_dynamo(dict(raw))
        connection_id = str(item["connectionId"])
        for key, record in item[WARMING_ATTRIBUTE].items():
            if len(done.handed_over) + len(done.timed_out) + len(done.failed) >= budget:
                return done
            try:
                _one(deps, connection_id, key, record, now, done)
            except Exception:
                log.exception("sweeper: parked question %s could not be handled this run", key)
                done.failed.append(key)
    return done


def _one(
    deps: EdgeDeps, connection_id: str, key: str, record: dict[str, Any], now: int, done: Handed
) -> None:
    job = json.loads(record["job"])
    if int(record["until"]) < now:
        _expire(deps, connection_id, key, job, done)
        return
    if not still_parked(deps.store, connection_id, key):
        # Stopped by the student (edge/interrupt.py) since the sweeper's index read, which may
        # be stale: a consistent read, so a stopped question is not handed over.
        return
    try:
        post_job(deps.settings.agentcore_url, "/v1/queries", job, deps.settings.agentcore_timeout_seconds)
    except AgentCoreError as exc:
        # Still no host (or a timed-out hand-off AgentCore may have taken: its final claim makes
        # the next run's hand-off harmless). The next run tries again, until the bound.
        log.info("sweeper: parked question %s not handed over yet: %s", key, exc)
        return
    take(deps.store, connection_id, key)
    log.info("sweeper: parked question %s handed to AgentCore", key)
    done.handed_over.append(key)


def _expire(deps: EdgeDeps, connection_id: str, key: str, job: dict[str, Any], done: Handed) -> None:
    if not take(deps.store, connection_id, key):
        return  # another run took it
    # The final's claim first: an earlier hand-off that timed out may have reached AgentCore.
    if not final_claim.claim(deps.store, connection_id, key, "sweeper"):
        return
    done.timed_out.append(key)
    deps.quotas.finish_job(str(job["owner"]), key)
    bound = bound_seconds(deps.platform)
    push(
        deps,
        connection_id,
        ErrorMessage(
            code=ErrorCode.UPSTREAM_UNAVAILABLE,
            message=f"no answering server became ready within {bound} s; ask again later",
            requestId=str(job["requestId"]),
        ),
    )
