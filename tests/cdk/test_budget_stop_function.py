"""The budget action's function against moto's SSM, Auto Scaling, SNS and SQS: at 100 % of the
budget it closes intake, takes the GPU group to 0 for good (its schedule suspended) and says so."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from synapscribe.edge.intake import parameter_name as intake_parameter_name
from synapscribe_cdk.constructs.cost_guard import BUDGET_STOP_CODE

# Loaded as Lambda loads it: a top-level module from the asset folder (not part of the package).
_SPEC = importlib.util.spec_from_file_location("budget_stop", BUDGET_STOP_CODE / "budget_stop.py")
assert _SPEC is not None and _SPEC.loader is not None
budget_stop = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(budget_stop)

GROUP = "SynapScribe-dev-gpu-fleet"
#: What Budgets sends to an SNS topic (a plain-text message; the function acts on any).
NOTIFICATION = (
    "AWS Budget Notification December 07, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\n"
    "You requested that we alert you when the ACTUAL Cost associated with your SynapScribe-dev "
    "budget is greater than $300.00 for the current month."
)


def sns_event(message: str = NOTIFICATION) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message, "Subject": "AWS Budgets"}}]}


@pytest.fixture
def account(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="eu-west-1a")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName="gpu", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.2xlarge"}
        )
        autoscaling = boto3.client("autoscaling")
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            LaunchTemplate={"LaunchTemplateName": "gpu"},
            MinSize=1,
            MaxSize=2,
            DesiredCapacity=1,
            VPCZoneIdentifier=subnet["Subnet"]["SubnetId"],
        )
        ssm = boto3.client("ssm")
        ssm.put_parameter(
            Name=intake_parameter_name("dev"),
            Type="String",
            Value=json.dumps({"uploads": "open", "questions": "open"}),
        )
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="alarms")["TopicArn"]
        sqs = boto3.client("sqs")
        inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
        settings = budget_stop.Settings(
            {
                "INTAKE_PARAMETER": intake_parameter_name("dev"),
                "AUTO_SCALING_GROUP_NAME": GROUP,
                "ALARM_TOPIC_ARN": topic,
                "ENVIRONMENT": "dev",
            }
        )
        yield {
            "settings": settings,
            "ssm": ssm,
            "autoscaling": autoscaling,
            "sns": sns,
            "sqs": sqs,
            "inbox": inbox,
        }


def _stop(account: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    clients = {k: account[k] for k in ("ssm", "autoscaling", "sns")}
    result: dict[str, Any] = budget_stop.stop(event, account["settings"], **clients)
    return result


def _group(account: dict[str, Any]) -> dict[str, Any]:
    groups = account["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return dict(groups["AutoScalingGroups"][0])


def _intake(account: dict[str, Any]) -> dict[str, str]:
    value = account["ssm"].get_parameter(Name=intake_parameter_name("dev"))["Parameter"]["Value"]
    return dict(json.loads(value))


def test_the_budget_closes_intake_and_the_fleet(account: dict[str, Any]) -> None:
    assert _stop(account, sns_event())["max"] == 0
    assert _intake(account) == {"uploads": "closed", "questions": "closed"}
    group = _group(account)
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 0, 0)
    # The morning schedule would raise the maximum again: it stays suspended until an operator resumes it.
    assert [p["ProcessName"] for p in group["SuspendedProcesses"]] == ["ScheduledActions"]
    messages = account["sqs"].receive_message(QueueUrl=account["inbox"], MaxNumberOfMessages=10)["Messages"]
    (body,) = [json.loads(m["Body"]) for m in messages]
    assert "intake and GPU fleet closed" in body["Subject"]
    assert "Cost ceilings and alarms" in body["Message"] and "SynapScribe-dev budget" in body["Message"]


def test_a_second_notification_changes_nothing_more(account: dict[str, Any]) -> None:
    _stop(account, sns_event())
    _stop(account, sns_event())
    assert _intake(account) == {"uploads": "closed", "questions": "closed"}
    assert _group(account)["MaxSize"] == 0


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": [{"Sns": {}}]}, {"detail": "x"}])
def test_anything_but_a_notification_stops_nothing(account: dict[str, Any], event: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _stop(account, event)
    assert _intake(account) == {"uploads": "open", "questions": "open"}
    assert _group(account)["MaxSize"] == 2


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="AUTO_SCALING_GROUP_NAME"):
        budget_stop.Settings({"INTAKE_PARAMETER": "/x", "ALARM_TOPIC_ARN": "arn", "ENVIRONMENT": "dev"})
