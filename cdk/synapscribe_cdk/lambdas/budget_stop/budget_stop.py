"""The budget's action: at 100 % of the month's budget, stop what strangers can make us spend.

AWS Budgets' own actions apply IAM or SCP policies or stop EC2/RDS instances; none can set an
Auto Scaling group's maximum (a stopped spot instance would simply be replaced). So the budget's
100 % ACTUAL notification goes to its own SNS topic, whose only subscriber is this function, and
this function:

1. closes intake: writes `{"uploads": "closed", "questions": "closed"}` to the environment's
   intake switch (`/synapscribe/<env>/intake`, an SSM parameter the WebSocket handler reads), so
   no new lecture or question is accepted;
2. sets the GPU group's minimum, maximum and desired capacity to 0, and suspends its scheduled
   actions, so the morning schedule does not raise the maximum again (the operator's guide,
   "Cost ceilings and alarms", says how to re-open);
3. tells the people on the alarm topic what it did.

Every step is idempotent: SNS retries a failed delivery, and Budgets may notify again.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

CLOSED = {"uploads": "closed", "questions": "closed"}
#: The group's processes that would undo the stop: the morning action raises its maximum again.
SUSPENDED_PROCESSES = ["ScheduledActions"]


class Settings:
    def __init__(self, env: dict[str, str]) -> None:
        try:
            self.intake_parameter = env["INTAKE_PARAMETER"]
            self.group_name = env["AUTO_SCALING_GROUP_NAME"]
            self.alarm_topic_arn = env["ALARM_TOPIC_ARN"]
            self.environment = env["ENVIRONMENT"]
        except KeyError as exc:
            raise RuntimeError(f"budget action misconfigured: {exc!r}") from None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return stop(
        event,
        Settings(dict(os.environ)),
        ssm=boto3.client("ssm"),
        autoscaling=boto3.client("autoscaling"),
        sns=boto3.client("sns"),
    )


def budget_messages(event: dict[str, Any]) -> list[str]:
    """The notifications' texts (an SNS event; anything else is refused, nothing is stopped)."""
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise ValueError(f"not an SNS event: {sorted(event)}")
    messages = []
    for record in records:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict) or not isinstance(sns.get("Message"), str):
            raise ValueError("an SNS record without a message")
        messages.append(sns["Message"])
    return messages


def stop(
    event: dict[str, Any], settings: Settings, *, ssm: Any, autoscaling: Any, sns: Any
) -> dict[str, Any]:
    messages = budget_messages(event)
    ssm.put_parameter(Name=settings.intake_parameter, Value=json.dumps(CLOSED), Type="String", Overwrite=True)
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=settings.group_name, MinSize=0, MaxSize=0, DesiredCapacity=0
    )
    autoscaling.suspend_processes(
        AutoScalingGroupName=settings.group_name, ScalingProcesses=SUSPENDED_PROCESSES
    )
    done = (
        f"SynapScribe {settings.environment} reached 100 % of its monthly AWS budget. Intake is closed "
        f"({settings.intake_parameter}) and the GPU group {settings.group_name} is at maximum 0 with "
        "its scheduled actions suspended. To re-open, see the operator's guide, 'Cost ceilings and "
        "alarms'.\n\nThe budget's notification:\n" + "\n---\n".join(messages)
    )
    sns.publish(
        TopicArn=settings.alarm_topic_arn,
        Subject=f"SynapScribe {settings.environment}: budget reached, intake and GPU fleet closed"[:100],
        Message=done,
    )
    log.info("budget action: intake closed, %s at 0", settings.group_name)
    return {"intake": CLOSED, "group": settings.group_name, "max": 0}
