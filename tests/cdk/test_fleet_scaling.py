"""The GPU fleet scales on its load as `synapscribe simulate` modelled it (constructs/fleet_scaling.py).

The rules checked are AWS's documented ones (EC2 Auto Scaling User Guide and API reference):
a customized target-tracking metric names its namespace, metric, every dimension it is published
with and a statistic; EC2 Auto Scaling's target tracking has no cooldown (warmup instead), so the
scale-in cooldown needs a simple scaling policy, which honours its Cooldown after any activity.
"""

from __future__ import annotations

from typing import Any

from synapscribe.agentcore.metrics import NAMESPACE
from synapscribe.scaling import SCALE_IN_DATAPOINTS, SCALE_IN_FRACTION
from synth_support import Synthesized, resources_of


def _policies(synth: Synthesized) -> dict[str, dict[str, Any]]:
    found = resources_of(synth.templates["compute"], "AWS::AutoScaling::ScalingPolicy").values()
    return {p["Properties"]["PolicyType"]: p["Properties"] for p in found}


def _group_logical_id(synth: Synthesized) -> str:
    (logical_id,) = resources_of(synth.templates["compute"], "AWS::AutoScaling::AutoScalingGroup")
    return logical_id


def test_group_has_the_environments_fixed_name(synth: Synthesized) -> None:
    config = synth.platform.config
    group = synth.templates["compute"]["Resources"][_group_logical_id(synth)]["Properties"]
    assert group["AutoScalingGroupName"] == config.fleet_group_name
    # AgentCore tags its metrics with it (the dimension the policy averages over).
    assert f"SYNAPSCRIBE_FLEET_GROUP={config.fleet_group_name}" in str(
        resources_of(synth.templates["compute"], "AWS::EC2::LaunchTemplate")
    )


def test_target_tracking_scales_out_on_in_flight_per_instance(synth: Synthesized) -> None:
    config = synth.platform.config
    assert config.scaling is not None, "cdk.json dev has a scaling block"
    policies = _policies(synth)
    tracking = policies["TargetTrackingScaling"]
    assert tracking["AutoScalingGroupName"] == {"Ref": _group_logical_id(synth)}
    spec = tracking["TargetTrackingConfiguration"]
    assert spec["TargetValue"] == config.scaling.target_in_flight_per_instance
    assert spec["CustomizedMetricSpecification"] == {
        "Namespace": NAMESPACE,
        "MetricName": "InFlightToModel",
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": config.fleet_group_name}],
        "Statistic": "Average",
    }
    # Scale-in is the simple policy's (it can hold a cooldown); the warmup is the scale-out cooldown.
    assert spec["DisableScaleIn"] is True
    assert tracking["EstimatedInstanceWarmup"] == config.scaling.scale_out_cooldown_seconds
    assert "Cooldown" not in tracking  # EC2 Auto Scaling uses Cooldown only with SimpleScaling


def test_scale_in_one_instance_after_cooldown_on_sustained_low_load(synth: Synthesized) -> None:
    config = synth.platform.config
    assert config.scaling is not None
    simple = _policies(synth)["SimpleScaling"]
    assert (simple["AdjustmentType"], simple["ScalingAdjustment"]) == ("ChangeInCapacity", -1)
    assert simple["Cooldown"] == str(config.scaling.scale_in_cooldown_seconds)
    alarms = [
        a["Properties"]
        for a in resources_of(synth.templates["compute"], "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "InFlightToModel"
    ]
    (alarm,) = alarms
    (policy_id,) = [
        k
        for k, v in resources_of(synth.templates["compute"], "AWS::AutoScaling::ScalingPolicy").items()
        if v["Properties"]["PolicyType"] == "SimpleScaling"
    ]
    assert alarm["AlarmActions"] == [{"Fn::GetAtt": [policy_id, "Arn"]}]
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == SCALE_IN_FRACTION * config.scaling.target_in_flight_per_instance
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == SCALE_IN_DATAPOINTS
    assert (alarm["Period"], alarm["Statistic"], alarm["Namespace"]) == (60, "Average", NAMESPACE)
    assert alarm["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": config.fleet_group_name}]


def test_the_websocket_handler_may_start_only_its_own_fleet(synth: Synthesized) -> None:
    """Warming from zero (edge/warming.py): the handler knows the group by name and may set the
    desired capacity of that group alone. A group's ARN is
    arn:aws:autoscaling:<region>:<account>:autoScalingGroup:<uuid>:autoScalingGroupName/<name>
    (Service Authorization Reference, Amazon EC2 Auto Scaling); DescribeAutoScalingGroups takes
    no resource-level permission, so it is granted on `*`."""
    from iam_eval import allowed, resolve
    from synth_support import ACCOUNT, REGION

    config = synth.platform.config
    api = synth.templates["api"]
    (handler,) = [
        f["Properties"]
        for f in resources_of(api, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "synapscribe.edge.websocket_handler.handler"
    ]
    assert handler["Environment"]["Variables"]["SYNAPSCRIBE_FLEET_GROUP"] == config.fleet_group_name
    role = handler["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources_of(api, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    # The evaluator refuses conditions: those statements are the S3 listing (no autoscaling action).
    conditioned = [st for st in statements if "Condition" in st]
    assert all("autoscaling" not in str(st["Action"]) for st in conditioned)
    document = {"Statement": resolve([st for st in statements if "Condition" not in st], pseudo, str)}
    resolved = [document]
    arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:1a2b-3c:autoScalingGroupName/"
    assert allowed([resolved], "autoscaling:SetDesiredCapacity", arn + config.fleet_group_name)
    assert not allowed([resolved], "autoscaling:SetDesiredCapacity", arn + "someone-elses-group")
    assert not allowed([resolved], "autoscaling:UpdateAutoScalingGroup", arn + config.fleet_group_name)
    assert allowed([resolved], "autoscaling:DescribeAutoScalingGroups", "*")
