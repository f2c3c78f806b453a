"""Drains a GPU instance before it goes away (spot interruption, capacity rebalancing, scale-in).

Events (EventBridge):
- `EC2 Spot Instance Interruption Warning` for an instance of our group (it stops in 2 minutes):
  deregister it from AgentCore's target group at once, so the balancer sends it no new work.
- `EC2 Instance Rebalance Recommendation` is NOT acted on (and the rules do not send it): with
  capacity rebalancing, Auto Scaling launches a replacement and terminates the old instance only
  once the new one is InService, through the termination lifecycle action below. Deregistering on
  the recommendation would take the instance out of service while nothing replaces it yet.
- `EC2 Instance-terminate Lifecycle Action` from our group: deregister (again, idempotent), keep
  the instance alive DRAIN_SECONDS so AgentCore finishes the answers it already accepted
  (AgentCore answers 202 at once and streams to the client, so the balancer's own connection
  draining cannot see that work), then complete the lifecycle action with CONTINUE.

State lives in DynamoDB and S3, so a client's next question is served by another instance.
If this function fails, the hook's heartbeat timeout ends in CONTINUE anyway.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"
SPOT_INTERRUPTION = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"


class Settings:
    def __init__(self, env: dict[str, str]) -> None:
        try:
            self.target_group_arn = env["TARGET_GROUP_ARN"]
            self.group_name = env["AUTO_SCALING_GROUP_NAME"]
            self.drain_seconds = int(env["DRAIN_SECONDS"])
            self.port = int(env["TARGET_PORT"])
        except (KeyError, ValueError) as exc:
            raise RuntimeError(f"drain function misconfigured: {exc!r}") from None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return drain(
        event,
        Settings(dict(os.environ)),
        boto3.client("autoscaling"),
        boto3.client("elbv2"),
        time.sleep,
    )


def drain(
    event: dict[str, Any],
    settings: Settings,
    autoscaling: Any,
    elbv2: Any,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    kind = event.get("detail-type")
    detail = event.get("detail") or {}
    if kind == TERMINATE_ACTION:
        instance_id = detail["EC2InstanceId"]
        if detail.get("AutoScalingGroupName") != settings.group_name:
            return {"instance": instance_id, "action": "ignored", "reason": "another group"}
        _deregister(elbv2, settings, instance_id)
        log.info("draining %s for %d s before termination", instance_id, settings.drain_seconds)
        sleep(settings.drain_seconds)
        autoscaling.complete_lifecycle_action(
            LifecycleHookName=detail["LifecycleHookName"],
            AutoScalingGroupName=settings.group_name,
            LifecycleActionToken=detail["LifecycleActionToken"],
            LifecycleActionResult="CONTINUE",
            InstanceId=instance_id,
        )
        return {"instance": instance_id, "action": "drained"}
    if kind == REBALANCE:
        return {
            "instance": detail.get("instance-id", ""),
            "action": "ignored",
            "reason": "rebalance recommendation: Auto Scaling replaces the instance first",
        }
    if kind == SPOT_INTERRUPTION:
        instance_id = detail.get("instance-id", "")
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        if not any(i["AutoScalingGroupName"] == settings.group_name for i in found):
            return {"instance": instance_id, "action": "ignored", "reason": "not in the group"}
        _deregister(elbv2, settings, instance_id)
        return {"instance": instance_id, "action": "deregistered"}
    raise ValueError(f"unexpected event {kind!r}")


def _deregister(elbv2: Any, settings: Settings, instance_id: str) -> None:
    elbv2.deregister_targets(
        TargetGroupArn=settings.target_group_arn, Targets=[{"Id": instance_id, "Port": settings.port}]
    )
