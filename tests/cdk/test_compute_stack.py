"""The Compute stack: spot fleet, launch template, instance role, drain, schedules, alarms."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from synapscribe.agentcore.settings import EMF_LOG_GROUP_VARIABLE
from synapscribe.platform import load_platform
from synapscribe.store import TABLE_KEYS
from synapscribe_cdk.stacks.compute import AGENT_MESSAGE_ACTIONS, SESSION_CHANNEL_ACTIONS
from synth_support import Synthesized, resources_of


def _one(template: dict[str, Any], cfn_type: str) -> dict[str, Any]:
    found = list(resources_of(template, cfn_type).values())
    assert len(found) == 1, (cfn_type, len(found))
    return found[0]["Properties"]


def test_all_spot_price_capacity_optimized_g5_first(synth: Synthesized) -> None:
    group = _one(synth.templates["compute"], "AWS::AutoScaling::AutoScalingGroup")
    policy = group["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 0,
        "OnDemandPercentageAboveBaseCapacity": 0,
        "SpotAllocationStrategy": "price-capacity-optimized",
    }
    types = [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]]
    assert types[0] == "g5.2xlarge"
    assert types == synth.platform.config.instance_types and len(types) > 1
    assert group["CapacityRebalance"] is True
    assert group["HealthCheckType"] == "ELB"
    assert len(group["TargetGroupARNs"]) == 1


def test_capacity_and_night_schedule_come_from_config(synth: Synthesized) -> None:
    capacity = synth.platform.config.capacity
    group = _one(synth.templates["compute"], "AWS::AutoScaling::AutoScalingGroup")
    assert (group["MinSize"], group["MaxSize"]) == (str(capacity.min), str(capacity.max))
    # A desired capacity in the template would be reset by every deploy (undoing the night's
    # scale-to-zero); the minimum and the scheduled actions drive it.
    assert "DesiredCapacity" not in group
    actions = {
        a["Properties"]["Recurrence"]: a["Properties"]
        for a in resources_of(synth.templates["compute"], "AWS::AutoScaling::ScheduledAction").values()
    }
    night = actions[capacity.night_scale_in_cron]
    assert (night["MinSize"], night["DesiredCapacity"]) == (0, 0)
    # The night's maximum is a cost ceiling (default 1): warming and load scaling stop there.
    assert night["MaxSize"] == capacity.night_max == 1 < capacity.max
    morning = actions[capacity.morning_scale_out_cron]
    # With load scaling (cdk.json `scaling`), the day's size is the floor the policies keep to.
    day_floor = capacity.desired if synth.platform.config.scaling else capacity.min
    assert (morning["MinSize"], morning["DesiredCapacity"]) == (day_floor, capacity.desired)
    assert morning["MaxSize"] == capacity.max  # the morning restores the day's ceiling
    assert {a["TimeZone"] for a in actions.values()} == {capacity.time_zone}


def test_launch_template_imdsv2_encrypted_root_and_ami_from_ssm(synth: Synthesized) -> None:
    template = synth.templates["compute"]
    data = _one(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    (root,) = data["BlockDeviceMappings"]
    assert root["DeviceName"] == load_platform().host.root_device
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeSize"] == synth.platform.config.root_volume_gib
    # The weights arrive at the provisioned rate, not on first read (cdk.json, per environment).
    rate = synth.platform.config.root_volume_initialization_mib_per_second
    assert rate is not None and root["Ebs"]["VolumeInitializationRate"] == rate
    # EC2 resolves the environment's channel at each launch: no CloudFormation parameter, so a
    # promoted image needs no deploy.
    assert data["ImageId"] == "resolve:ssm:" + load_platform().ami.channel("dev").current
    assert not [p for p in template.get("Parameters", {}).values() if "EC2::Image" in p["Type"]]


def test_dev_and_prod_launch_templates_read_their_own_channels(
    synth: Synthesized, prod_assembly: Path
) -> None:
    prod = json.loads((prod_assembly / "SynapScribe-prod-Compute.template.json").read_text())
    images = {
        env: _one(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["ImageId"]
        for env, template in (("dev", synth.templates["compute"]), ("prod", prod))
    }
    ami = load_platform().ami
    assert images == {env: f"resolve:ssm:{ami.channel(env).current}" for env in ("dev", "prod")}
    assert images["dev"] != images["prod"]


def test_fleet_runs_in_private_subnets_without_public_addresses(synth: Synthesized) -> None:
    from synapscribe_cdk.stacks.network import FLEET_SUBNETS

    data = _one(synth.templates["compute"], "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert [n.get("AssociatePublicIpAddress") for n in data.get("NetworkInterfaces", [])] in ([], [False])
    group = _one(synth.templates["compute"], "AWS::AutoScaling::AutoScalingGroup")
    network = synth.templates["network"]
    subnets = resources_of(network, "AWS::EC2::Subnet")
    # The group's subnets are the Network stack's fleet subnets (read from its outputs), all private.
    outputs = {
        name: o["Value"]["Ref"]
        for name, o in network.get("Outputs", {}).items()
        if isinstance(o["Value"], dict) and "Ref" in o["Value"]
    }
    used = [outputs[z["Fn::GetStackOutput"]["OutputName"]] for z in group["VPCZoneIdentifier"]]
    assert used and all(subnets[s]["Properties"]["MapPublicIpOnLaunch"] is False for s in used)
    assert all(
        {"Key": "aws-cdk:subnet-name", "Value": FLEET_SUBNETS} in subnets[s]["Properties"]["Tags"]
        for s in used
    )
    # One fleet subnet in each configured zone, and only there (config.zones_in, never a lookup).
    zones = sorted(subnets[s]["Properties"]["AvailabilityZone"] for s in used)
    assert zones == sorted(synth.platform.config.zones_in("eu-west-1"))


def test_user_data_writes_deploy_env_and_starts_units(synth: Synthesized) -> None:
    data = _one(synth.templates["compute"], "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    parts = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
    script = "".join(p if isinstance(p, str) else "{token}" for p in parts)
    host = load_platform().host
    assert f"cat > {host.deploy_env_file}.tmp <<" in script
    assert f"\nmv {host.deploy_env_file}.tmp {host.deploy_env_file}\n" in script
    names = {f"SYNAPSCRIBE_{f.upper()}" for f in TABLE_KEYS} | {
        "SYNAPSCRIBE_BUCKET",
        "SYNAPSCRIBE_CONNECTIONS_ENDPOINT",
        "AWS_REGION",
    }
    for name in names:
        assert f"\n{name}=" in script, name
    assert "SYNAPSCRIBE_CONNECTIONS_ENDPOINT=https://{token}.execute-api." in script
    # vLLM is ready before user data runs (cloud-final is after multi-user.target, which waits for
    # vLLM's readiness poll): started if need be, never restarted (a second model load); AgentCore
    # is restarted to read the deploy environment.
    vllm, tts, agentcore = host.units.services()
    assert f"\nsystemctl start {vllm} {tts}\n" in script
    assert f"\nsystemctl restart {agentcore}" in script
    assert f"restart {vllm}" not in script
    # The environment's log groups: AgentCore's metrics group in the deploy environment, and the
    # AMI's agent template rendered for dev, then the agent (re)started, before AgentCore restarts.
    groups = load_platform().fleet.log_groups.names("dev")
    assert f"\n{EMF_LOG_GROUP_VARIABLE}={groups['metrics']}\n" in script
    agent = host.cloudwatch_agent
    render = f"\nsed -e 's/[{{]env[}}]/dev/g' {agent.config_template} > {agent.config}.tmp\n"
    start = f"\n{agent.ctl} -a fetch-config -m ec2 -c file:{agent.config} -s\n"
    assert script.index(f"mv {host.deploy_env_file}.tmp") < script.index(render) < script.index(start)
    assert script.index(start) < script.index(f"systemctl restart {agentcore}")


def _instance_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    roles = resources_of(template, "AWS::IAM::Role")
    (role,) = [
        k
        for k, r in roles.items()
        if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    # No AWS managed policy: Session Manager's minimal set is inline (test_session_manager_instead_of_ssh).
    assert not roles[role]["Properties"].get("ManagedPolicyArns")
    return [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_instance_role_is_what_agentcore_does(synth: Synthesized) -> None:
    prefixes = load_platform().storage.prefixes
    statements = _instance_statements(synth.templates["compute"])

    def prefixes_for(action: str) -> set[str]:
        found = set()
        for s in statements:
            if s["Action"] == action:
                for r in s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]:
                    found.add(r["Fn::Join"][1][-1].lstrip("/").removesuffix("*"))
        return found

    assert prefixes_for("s3:GetObject") == {
        prefixes.lectures,
        prefixes.queries,
        prefixes.responses,  # presigned GETs of answers are signed by this role
        prefixes.segments,
        prefixes.transcripts,
    }
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Resource"] == {
        "Fn::GetStackOutput": {"StackName": "SynapScribe-dev-Data", "OutputName": "BucketArn"}
    }
    # Listing stops at the prefixes it reads (AgentCore lists a missing key to tell it from a denial).
    assert list(listing["Condition"]) == ["StringLike"]
    listed = listing["Condition"]["StringLike"]["s3:prefix"]
    assert sorted(listed) == sorted(f"{p}*" for p in prefixes_for("s3:GetObject"))
    assert prefixes_for("s3:PutObject") == {prefixes.responses, prefixes.segments, prefixes.transcripts}
    # Only what it made for a lecture deleted meanwhile (issue 18): never a recording or an answer.
    assert prefixes_for("s3:DeleteObject") == {prefixes.segments, prefixes.transcripts}
    actions = {
        a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert "execute-api:ManageConnections" in actions
    assert not any(a.endswith("*") for a in actions)
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= actions
    # The host registry: its own item only (the key is the role session's user id), never read.
    (registry,) = [s for s in statements if "Condition" in s and "dynamodb:LeadingKeys" in json.dumps(s)]
    assert sorted(registry["Action"]) == ["dynamodb:DeleteItem", "dynamodb:PutItem"]
    assert registry["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:userid}"]}}
    assert "Hosts" in json.dumps(registry["Resource"])
    others = [s for s in statements if s is not registry and "Hosts" in json.dumps(s.get("Resource"))]
    assert others == [], others
    connections = next(s for s in statements if s["Action"] == "execute-api:ManageConnections")
    assert json.dumps(connections["Resource"]).endswith('"/prod/POST/@connections/*"]]}')
    # Only the Session Manager actions that have no resource type are on * (see below).
    for s in statements:
        if s["Resource"] == "*":
            assert {a.split(":")[0] for a in _actions(s)} <= {"ssmmessages", "ec2messages"}, s


def test_termination_hook_and_drain_rules(synth: Synthesized) -> None:
    template = synth.templates["compute"]
    drain = synth.platform.config.drain_seconds
    hook = _one(template, "AWS::AutoScaling::LifecycleHook")
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["DefaultResult"] == "CONTINUE"
    assert hook["HeartbeatTimeout"] > drain
    rules = [r["Properties"] for r in resources_of(template, "AWS::Events::Rule").values()]
    detail_types = sorted(t for r in rules for t in r["EventPattern"]["detail-type"])
    # No rebalance recommendation: Auto Scaling replaces the instance first and then terminates
    # it through the hook, which drains it (deregistering on the recommendation would take it out
    # of service while nothing replaces it yet).
    assert detail_types == sorted(
        ["EC2 Instance-terminate Lifecycle Action", "EC2 Spot Instance Interruption Warning"]
    )
    functions = resources_of(template, "AWS::Lambda::Function").values()
    (fn,) = [f["Properties"] for f in functions if f["Properties"]["Handler"] == "drain_instance.handler"]
    assert fn["Environment"]["Variables"]["DRAIN_SECONDS"] == str(drain)
    assert fn["Timeout"] > drain
    for rule in rules:
        assert rule["Targets"][0]["Arn"]["Fn::GetAtt"][0] in resources_of(template, "AWS::Lambda::Function")


def test_balancer_alarms(synth: Synthesized) -> None:
    alarms = [
        a["Properties"]
        for a in resources_of(synth.templates["compute"], "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") != "InFlightToModel"  # the scale-in alarm: test_fleet_scaling.py
    ]
    assert len(alarms) == 4
    text = json.dumps(alarms)
    for metric in ("HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "UnHealthyHostCount"):
        assert metric in text
    assert all(len(a["AlarmDescription"]) > 40 for a in alarms)
    starved = next(a for a in alarms if "no instance has passed /ready" in a["AlarmDescription"])
    expressions = [m.get("Expression") for m in starved["Metrics"]]
    assert "IF(desired > 0 AND FILL(healthy, 0) < 1, 1, 0)" in expressions
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in starved["Metrics"] if "MetricStat" in m}
    assert names == {"GroupDesiredCapacity", "HealthyHostCount"}


def test_session_manager_instead_of_ssh(synth: Synthesized) -> None:
    """Session Manager's minimal set instead of AmazonSSMManagedInstanceCore: the channel and
    message actions (no resource type, so *), the agent's own instance, and SSM parameters under
    the project's prefix only (the managed policy read every parameter of the account)."""
    template = synth.templates["compute"]
    data = _one(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert "KeyName" not in data
    roles = resources_of(template, "AWS::IAM::Role").values()
    assert not any(r["Properties"].get("ManagedPolicyArns") for r in roles)
    statements = _instance_statements(template)
    ssm = [s for s in statements if any(a.split(":")[0] in SSM_SERVICES for a in _actions(s))]
    assert bool(ssm) == synth.platform.config.session_manager
    by_action = {a: s for s in ssm for a in _actions(s)}
    for action in ("ssmmessages:OpenDataChannel", "ec2messages:GetMessages"):
        assert by_action[action]["Resource"] == "*"
    assert "instance/*" in json.dumps(by_action["ssm:UpdateInstanceInformation"]["Resource"])
    for action in ("ssm:GetParameter", "ssm:GetParameters"):
        resource = json.dumps(by_action[action]["Resource"])
        assert ":parameter/synapscribe/*" in resource, resource
    # Nothing else of SSM (no SendCommand, no PutParameter, no documents) and no wildcard action.
    assert set(by_action) == {
        *SESSION_CHANNEL_ACTIONS,
        *AGENT_MESSAGE_ACTIONS,
        "ssm:UpdateInstanceInformation",
        "ssm:GetParameter",
        "ssm:GetParameters",
    }


SSM_SERVICES = {"ssm", "ssmmessages", "ec2messages"}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_user_data_is_valid_bash(synth: Synthesized, tmp_path: Any) -> None:
    data = _one(synth.templates["compute"], "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    parts = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
    script = tmp_path / "user-data.sh"
    script.write_text("".join(p if isinstance(p, str) else "resolved-value" for p in parts))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/bin/bash\nset -euo pipefail\n")


def test_fleet_alarm_names_are_an_output_for_the_image_rollout(synth: Synthesized) -> None:
    """`synapscribe ami rollout` reads them as its instance refresh's alarm specification."""
    from synapscribe_ops.ami.cli import ALARMS_OUTPUT, GROUP_OUTPUT

    template = synth.templates["compute"]
    outputs = template["Outputs"]
    assert GROUP_OUTPUT in outputs
    separator, parts = outputs[ALARMS_OUTPUT]["Value"]["Fn::Join"]
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert separator == ","
    named = {p["Ref"] for p in parts}
    assert named and named <= set(alarms)
    assert {k for k in alarms if "NoHealthyHosts" in k} <= named
