"""The fleet's log groups (platform.yaml fleet.log_groups, named for the environment) with the
environment's retention, the instance role's right to ship to them and nothing else, and dev and
prod never sharing a group."""

from __future__ import annotations

import os
import re
from typing import Any

from aws_cdk import assertions
from synapscribe.agentcore.settings import EMF_LOG_GROUP_VARIABLE
from synapscribe.host_timeline import METRICS_LOG_GROUP_OUTPUT
from synapscribe.platform import load_platform
from synapscribe_cdk.application import default_context
from synapscribe_cdk.config import load_environment
from synapscribe_cdk.constructs.fleet_observability import AGENT_LOG_ACTIONS
from synth_support import Synthesized, cdk_env, dumps, resources_of


def _dev_retention() -> int:
    return load_environment(default_context()["synapscribe:environments"], "dev").log_retention_days


def test_log_groups_named_by_the_platform_with_the_environments_retention(synth: Synthesized) -> None:
    template = assertions.Template.from_json(synth.templates["compute"])
    groups = load_platform().fleet.log_groups.names("dev")
    for name in groups.values():
        template.has_resource_properties(
            "AWS::Logs::LogGroup", {"LogGroupName": name, "RetentionInDays": _dev_retention()}
        )
    # bench full reads the hosts' start-up timelines from the metrics group named in the outputs.
    output = synth.templates["compute"]["Outputs"][METRICS_LOG_GROUP_OUTPUT]["Value"]
    (logical_id,) = [
        k for k, v in _fleet_groups(synth.templates["compute"]).items() if v == groups["metrics"]
    ]
    assert output == {"Ref": logical_id}


def _fleet_groups(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> name of the fleet's log groups (the Observability construct's)."""
    return {
        k: v["Properties"]["LogGroupName"]
        for k, v in resources_of(template, "AWS::Logs::LogGroup").items()
        if "Observability" in k
    }


def _user_data(template: dict[str, Any]) -> str:
    (launch,) = resources_of(template, "AWS::EC2::LaunchTemplate").values()
    parts = launch["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "{token}" for p in parts)


def test_dev_and_prod_synthesize_disjoint_log_groups_from_one_ami(synth: Synthesized) -> None:
    """Both environments in one account: each creates (and so ships to: the role's grant names
    these groups) only its own groups, and its launch template fills its own name into the AMI's
    one agent template and gives AgentCore its own metrics group."""
    from aws_cdk import App
    from synapscribe_cdk.application import build

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in cdk_env().items() if k.startswith(("AWS_", "CDK_"))})
    try:
        app = App(context={**default_context(), "env": "prod"}, outdir=str(synth.outdir.parent / "prod.out"))
        compute = build(app).compute
        prod = app.synth().get_stack_by_name(compute.stack_name).template
    finally:
        os.environ.clear()
        os.environ.update(saved)
    dev = synth.templates["compute"]
    platform = load_platform()
    expected = {
        "dev": set(platform.fleet.log_groups.names("dev").values()),
        "prod": set(platform.fleet.log_groups.names("prod").values()),
    }
    for env, template in (("dev", dev), ("prod", prod)):
        assert set(_fleet_groups(template).values()) == expected[env], env
        agent = platform.host.cloudwatch_agent
        script = _user_data(template)
        assert f"sed -e 's/[{{]env[}}]/{env}/g' {agent.config_template} > {agent.config}.tmp\n" in script
        assert f"\n{agent.ctl} -a fetch-config -m ec2 -c file:{agent.config} -s\n" in script
        metrics = platform.fleet.log_groups.names(env)["metrics"]
        assert f"\n{EMF_LOG_GROUP_VARIABLE}={metrics}\n" in script
    assert not set(_fleet_groups(dev).values()) & set(_fleet_groups(prod).values())
    assert not expected["dev"] & expected["prod"]


def test_instance_role_ships_only_to_these_groups(synth: Synthesized) -> None:
    compute = synth.templates["compute"]
    policies = [
        p
        for p in resources_of(compute, "AWS::IAM::Policy").values()
        if "ShipLogs" in dumps(p["Properties"]["PolicyName"])
    ]
    assert len(policies) == 1
    props: dict[str, Any] = policies[0]["Properties"]
    (role_ref,) = props["Roles"]
    assert "InstanceRole" in role_ref["Ref"]
    (statement,) = props["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == sorted(AGENT_LOG_ACTIONS)
    groups = set(_fleet_groups(compute))
    referenced = {r["Fn::GetAtt"][0] for r in statement["Resource"]}
    assert referenced == groups and len(groups) == len(load_platform().fleet.log_groups.names("dev"))
    # No other statement of the stack lets anything write logs or metrics elsewhere for the fleet.
    for policy in resources_of(compute, "AWS::IAM::Policy").values():
        if policy is policies[0]:
            continue
        assert "logs:PutLogEvents" not in dumps(policy) and "cloudwatch:PutMetricData" not in dumps(policy)


def test_one_dashboard_with_the_figures_and_the_alarms(synth: Synthesized) -> None:
    compute = synth.templates["compute"]
    (dashboard,) = resources_of(compute, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "SynapScribe-dev"
    body = dumps(dashboard["Properties"]["DashboardBody"])
    for figure in (
        "TimeToFirstAudio", "p50", "p95", "Busy", "Errors", "InFlightToModel", "KvCacheUsage",
        "HealthyHostCount", "AWS/Lambda", "Throttles", "BucketSizeBytes", "SynapScribe/AgentCore",
    ):  # fmt: skip
        assert figure in body, figure
    platform = load_platform()
    assert f'\\"value\\":{platform.vllm.max_num_seqs},\\"label\\":\\"max_num_seqs\\"' in body
    assert "scaling target" in body
    # AgentCore's figures are this environment's group's roll-up, never every environment's.
    group = '\\"AutoScalingGroupName\\",\\"SynapScribe-dev-gpu-fleet\\"'
    assert body.count('\\"SynapScribe/AgentCore\\",') == body.count(group) > 0
    # Every alarm of the stack appears on the dashboard as an alarm widget.
    alarms = resources_of(compute, "AWS::CloudWatch::Alarm")
    assert alarms
    for logical_id in alarms:
        assert f'"Fn::GetAtt": ["{logical_id}", "Arn"]' in body, logical_id


def test_the_dashboard_shows_spot_interruptions_and_drains(synth: Synthesized) -> None:
    """EventBridge's TriggeredRules by RuleName for the interruption-warning and termination rules
    of the drain (constructs/spot_drain.py), and the drain function's errors and longest run."""
    compute = synth.templates["compute"]
    (dashboard,) = resources_of(compute, "AWS::CloudWatch::Dashboard").values()
    body = dumps(dashboard["Properties"]["DashboardBody"])
    assert "Spot interruptions and drains" in body
    rules = {
        k: v["Properties"]["EventPattern"]["detail-type"][0]
        for k, v in resources_of(compute, "AWS::Events::Rule").items()
    }
    from synapscribe_cdk.constructs.spot_drain import SPOT_INTERRUPTION, TERMINATE_ACTION

    notice = next(k for k, t in rules.items() if t == SPOT_INTERRUPTION)
    termination = next(k for k, t in rules.items() if t == TERMINATE_ACTION)
    for rule in (notice, termination):
        # The widget names each rule by reference, beside EventBridge's per-rule metric.
        assert re.search(r'TriggeredRules\\+",\\+"RuleName\\+",\\+"[^{}]{0,10}\{"Ref": "' + rule, body), rule
    assert "drain errors" in body and "longest drain (ms)" in body
