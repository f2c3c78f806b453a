"""The cost guard (constructs/cost_guard.py): the budget, its action, the anomaly monitor and the
cost alarms, as synthesized for dev (and prod's anomaly mail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synth_support import ACCOUNT, Synthesized, resources_of


def _one(template: dict[str, Any], cfn_type: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(template, cfn_type)
    assert len(found) == 1, (cfn_type, list(found))
    ((key, value),) = found.items()
    return key, value["Properties"]


def _topics(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::SNS::Topic")


def _action_topic(template: dict[str, Any]) -> str:
    (topic,) = [k for k, v in _topics(template).items() if "budget action" in v["Properties"]["DisplayName"]]
    return topic


def _alarm_topic(template: dict[str, Any]) -> str:
    (topic,) = [k for k in _topics(template) if k != _action_topic(template)]
    return topic


def test_the_budget_is_the_environments_month(synth: Synthesized) -> None:
    config = synth.platform.config
    template = synth.templates["data"]
    _, budget = _one(template, "AWS::Budgets::Budget")
    data = budget["Budget"]
    assert data["BudgetType"] == "COST" and data["TimeUnit"] == "MONTHLY"
    assert data["BudgetLimit"] == {"Amount": config.monthly_budget_usd, "Unit": "USD"}
    assert data["CostFilters"] == {"TagKeyValue": [f"user:environment${config.name}"]}
    notes = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"]): n["Subscribers"]
        for n in budget["NotificationsWithSubscribers"]
    }
    assert set(notes) == {("FORECASTED", 80), ("ACTUAL", 100)}
    assert notes[("FORECASTED", 80)] == [
        {"Address": {"Ref": _alarm_topic(template)}, "SubscriptionType": "SNS"}
    ]
    assert notes[("ACTUAL", 100)] == [
        {"Address": {"Ref": _action_topic(template)}, "SubscriptionType": "SNS"}
    ]


def test_every_environment_keeps_its_budget_in_bounds(synth: Synthesized) -> None:
    from synapscribe_cdk.application import default_context

    envs = default_context()["synapscribe:environments"]
    assert envs["dev"]["monthly_budget_usd"] <= 300 and envs["prod"]["monthly_budget_usd"] <= 3000


def test_the_action_topic_runs_the_stop_function_only(synth: Synthesized) -> None:
    template = synth.templates["data"]
    action = _action_topic(template)
    subscriptions = [
        s["Properties"] for s in resources_of(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": action}
    ]  # fmt: skip
    assert [s["Protocol"] for s in subscriptions] == ["lambda"]
    function = template["Resources"][subscriptions[0]["Endpoint"]["Fn::GetAtt"][0]]["Properties"]
    assert function["Handler"] == "budget_stop.handler" and "VpcConfig" not in function
    env = function["Environment"]["Variables"]
    assert env["INTAKE_PARAMETER"] == "/synapscribe/dev/intake"
    assert env["AUTO_SCALING_GROUP_NAME"] == synth.platform.config.fleet_group_name
    assert env["ALARM_TOPIC_ARN"] == {"Ref": _alarm_topic(template)}


def test_the_stop_function_may_do_exactly_its_three_things(synth: Synthesized) -> None:
    template = synth.templates["data"]
    (role_id,) = [
        k for k, r in resources_of(template, "AWS::IAM::Role").items()
        if "BudgetStop" in k or "CostGuard" in k
    ]  # fmt: skip
    statements = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action: dict[str, Any] = {}
    for s in statements:
        for action in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            by_action[action] = json.dumps(s["Resource"])
    assert set(by_action) == {
        "ssm:PutParameter",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SuspendProcesses",
        "sns:Publish",
        "kms:Decrypt",
        "kms:GenerateDataKey*",
    }
    assert by_action["ssm:PutParameter"].endswith(':parameter/synapscribe/dev/intake"]]}')
    group = synth.platform.config.fleet_group_name
    for action in ("autoscaling:UpdateAutoScalingGroup", "autoscaling:SuspendProcesses"):
        assert by_action[action].endswith(f':autoScalingGroup:*:autoScalingGroupName/{group}"]]}}')
    assert by_action["sns:Publish"] == json.dumps({"Ref": _alarm_topic(template)})


def test_budgets_may_publish_only_for_this_account(synth: Synthesized) -> None:
    template = synth.templates["data"]
    policies = resources_of(template, "AWS::SNS::TopicPolicy").values()
    admitted = {}
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Principal") == {"Service": "budgets.amazonaws.com"}:
                for topic in policy["Properties"]["Topics"]:
                    admitted[topic["Ref"]] = statement
    assert set(admitted) == {_alarm_topic(template), _action_topic(template)}
    for statement in admitted.values():
        assert statement["Action"] == "sns:Publish"
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
        assert f":budgets::{ACCOUNT}:*" in json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    key = next(
        r["Properties"] for r in resources_of(template, "AWS::KMS::Key").values()
        if "budgets.amazonaws.com" in json.dumps(r["Properties"]["KeyPolicy"])
    )  # fmt: skip
    (budgets,) = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "budgets.amazonaws.com"}
    ]
    assert budgets["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_the_anomaly_monitor_watches_the_environments_tag(synth: Synthesized) -> None:
    template = synth.templates["data"]
    _, monitor = _one(template, "AWS::CE::AnomalyMonitor")
    assert monitor["MonitorType"] == "CUSTOM"
    assert json.loads(monitor["MonitorSpecification"])["Tags"] == {
        "Key": "environment",
        "Values": ["dev"],
        "MatchOptions": ["EQUALS"],
    }
    # dev has no alarm address: nobody to mail.
    assert not resources_of(template, "AWS::CE::AnomalySubscription")


def test_prod_mails_anomalies_to_the_alarm_address(prod_assembly: Path) -> None:
    from synapscribe_cdk.application import default_context

    prod = default_context()["synapscribe:environments"]["prod"]
    template = json.loads((prod_assembly / "SynapScribe-prod-Data.template.json").read_text())
    _, subscription = _one(template, "AWS::CE::AnomalySubscription")
    assert subscription["Subscribers"] == [{"Address": prod["alarm_email"], "Type": "EMAIL"}]
    threshold = json.loads(subscription["ThresholdExpression"])["Dimensions"]
    assert threshold["Values"] == [f"{prod['monthly_budget_usd'] / 30:g}"]


def _alarm(template: dict[str, Any], logical_prefix: str) -> dict[str, Any]:
    (alarm,) = [
        v["Properties"]
        for k, v in resources_of(template, "AWS::CloudWatch::Alarm").items()
        if logical_prefix in k
    ]
    return alarm


def test_cost_alarms_follow_the_configuration(synth: Synthesized) -> None:
    limits = synth.platform.config.cost_alarms
    size = _alarm(synth.templates["data"], "BucketSize")
    assert size["MetricName"] == "BucketSizeBytes" and size["Period"] == 86400
    assert size["Threshold"] == limits.bucket_gib * 1024**3
    assert {d["Name"] for d in size["Dimensions"]} == {"BucketName", "StorageType"}
    messages = _alarm(synth.templates["api"], "MessageRate")
    assert messages["MetricName"] == "MessageCount" and messages["Period"] == 3600
    assert messages["Threshold"] == limits.messages_per_hour
    invocations = _alarm(synth.templates["api"], "InvocationRate")
    assert invocations["Threshold"] == limits.invocations_per_hour
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in invocations["Metrics"] if "MetricStat" in m} == {
        "Invocations"
    }
