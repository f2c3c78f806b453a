"""The drain Lambda against moto's Auto Scaling and ELBv2: deregister, wait, continue."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws
from synapscribe_cdk.constructs.spot_drain import DRAIN_CODE

# Loaded as Lambda loads it: a top-level module from the asset folder (not part of the package).
_SPEC = importlib.util.spec_from_file_location("drain_instance", DRAIN_CODE / "drain_instance.py")
assert _SPEC is not None and _SPEC.loader is not None
drain_instance = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drain_instance)

PORT = 5000


@pytest.fixture
def fleet(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="eu-west-1a")[
            "Subnet"
        ]
        elbv2 = boto3.client("elbv2")
        tg = elbv2.create_target_group(
            Name="agentcore", Protocol="HTTP", Port=PORT, VpcId=vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        autoscaling = boto3.client("autoscaling")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName="gpu", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.2xlarge"}
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="fleet",
            LaunchTemplate={"LaunchTemplateName": "gpu"},
            MinSize=1,
            MaxSize=2,
            DesiredCapacity=1,
            VPCZoneIdentifier=subnet["SubnetId"],
            TargetGroupARNs=[tg],
        )
        autoscaling.put_lifecycle_hook(
            LifecycleHookName="drain",
            AutoScalingGroupName="fleet",
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=150,
            DefaultResult="CONTINUE",
        )
        instance = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["fleet"])[
            "AutoScalingGroups"
        ][0]["Instances"][0]["InstanceId"]
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance, "Port": PORT}])
        settings = drain_instance.Settings(
            {
                "TARGET_GROUP_ARN": tg,
                "AUTO_SCALING_GROUP_NAME": "fleet",
                "DRAIN_SECONDS": "90",
                "TARGET_PORT": str(PORT),
            }
        )
        yield {
            "tg": tg,
            "instance": instance,
            "settings": settings,
            "autoscaling": autoscaling,
            "elbv2": elbv2,
        }


def _targets(fleet: dict[str, Any]) -> list[str]:
    health = fleet["elbv2"].describe_target_health(TargetGroupArn=fleet["tg"])["TargetHealthDescriptions"]
    return [t["Target"]["Id"] for t in health]


def test_spot_notice_deregisters_at_once(fleet: dict[str, Any]) -> None:
    assert _targets(fleet) == [fleet["instance"]]
    sleeps: list[float] = []
    event = {
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "detail": {"instance-id": fleet["instance"]},
    }
    result = drain_instance.drain(
        event, fleet["settings"], fleet["autoscaling"], fleet["elbv2"], sleeps.append
    )
    assert result == {"instance": fleet["instance"], "action": "deregistered"}
    assert _targets(fleet) == []
    assert sleeps == []


def test_rebalance_recommendation_keeps_the_instance_in_service(fleet: dict[str, Any]) -> None:
    """Capacity rebalancing replaces the instance first; the termination hook drains it later."""
    autoscaling, elbv2 = fleet["autoscaling"], fleet["elbv2"]
    event = {
        "detail-type": "EC2 Instance Rebalance Recommendation",
        "detail": {"instance-id": fleet["instance"]},
    }
    sleeps: list[float] = []
    result = drain_instance.drain(event, fleet["settings"], autoscaling, elbv2, sleeps.append)
    assert result["action"] == "ignored" and "rebalance" in result["reason"]
    assert _targets(fleet) == [fleet["instance"]]
    assert sleeps == []


def test_notice_for_a_foreign_instance_changes_nothing(fleet: dict[str, Any]) -> None:
    event = {
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "detail": {"instance-id": "i-0123456789abcdef0"},
    }
    result = drain_instance.drain(
        event, fleet["settings"], fleet["autoscaling"], fleet["elbv2"], lambda _: None
    )
    assert result["action"] == "ignored"
    assert _targets(fleet) == [fleet["instance"]]


def test_termination_drains_then_continues(fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    # moto does not implement CompleteLifecycleAction: validate the request against botocore's
    # model (as the real client would) and record it instead of sending it.
    def recording(**kwargs: Any) -> dict[str, Any]:
        assert _targets(fleet) == [], "deregistered before the lifecycle action completes"
        model = fleet["autoscaling"].meta.service_model.operation_model("CompleteLifecycleAction")
        validate_parameters(kwargs, model.input_shape)
        calls.append(kwargs)
        return {}

    monkeypatch.setattr(fleet["autoscaling"], "complete_lifecycle_action", recording)
    sleeps: list[float] = []
    event = {
        "detail-type": "EC2 Instance-terminate Lifecycle Action",
        "detail": {
            "EC2InstanceId": fleet["instance"],
            "AutoScalingGroupName": "fleet",
            "LifecycleHookName": "drain",
            "LifecycleActionToken": "3f2a1b4c-0000-4000-8000-000000000001",
        },
    }
    result = drain_instance.drain(
        event, fleet["settings"], fleet["autoscaling"], fleet["elbv2"], sleeps.append
    )
    assert result == {"instance": fleet["instance"], "action": "drained"}
    assert sleeps == [90]
    assert calls == [
        {
            "LifecycleHookName": "drain",
            "AutoScalingGroupName": "fleet",
            "LifecycleActionToken": "3f2a1b4c-0000-4000-8000-000000000001",
            "LifecycleActionResult": "CONTINUE",
            "InstanceId": fleet["instance"],
        }
    ]


def test_unexpected_event_is_an_error(fleet: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unexpected event"):
        drain_instance.drain(
            {"detail-type": "Something"},
            fleet["settings"],
            fleet["autoscaling"],
            fleet["elbv2"],
            lambda _: None,
        )
    with pytest.raises(RuntimeError, match="misconfigured"):
        drain_instance.Settings({"TARGET_GROUP_ARN": "x"})
