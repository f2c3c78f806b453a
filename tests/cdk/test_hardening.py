"""Hardening across the whole app: IMDSv2 and encrypted volumes on every instance, the fleet's
egress, the Lambdas' log permissions, the default security group, and the fleet's health-check
grace against vLLM's start timeout."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from synapscribe.platform import PlatformConfigError, load_platform, parse_platform
from synth_support import REPO, Synthesized, resources_of


def _flat(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_every_instance_and_launch_template_requires_imdsv2_and_encrypts(synth: Synthesized) -> None:
    seen = 0
    for stack, template in synth.templates.items():
        launch_templates = resources_of(template, "AWS::EC2::LaunchTemplate")
        for kind, data in [
            *(("instance", r["Properties"]) for r in resources_of(template, "AWS::EC2::Instance").values()),
            *(("template", r["Properties"]["LaunchTemplateData"]) for r in launch_templates.values()),
        ]:
            seen += 1
            options = data.get("MetadataOptions")
            if options is None and kind == "instance" and "LaunchTemplate" in data:
                # An instance may take IMDSv2 from its launch template (CDK's IMDSv2 aspect).
                name = data["LaunchTemplate"]["LaunchTemplateName"]
                options = next(
                    t["Properties"]["LaunchTemplateData"].get("MetadataOptions")
                    for t in launch_templates.values()
                    if _flat(t["Properties"].get("LaunchTemplateName")) == _flat(name)
                )
            assert options, (stack, kind, data)
            assert options["HttpTokens"] == "required", (stack, kind)
            assert options["HttpPutResponseHopLimit"] == 1, (stack, kind)
            devices = data.get("BlockDeviceMappings")
            assert devices, f"{stack}: a {kind} without block device mappings gets an unencrypted root"
            for device in devices:
                assert device["Ebs"]["Encrypted"] is True, (stack, kind, device)
    assert seen >= 2  # the NAT's and the fleet's launch templates


def _group(template: dict[str, Any], description_start: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, g["Properties"])
        for k, g in resources_of(template, "AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"].startswith(description_start)
    ]
    return found


def test_fleet_egress_is_tls_and_apt_only(synth: Synthesized) -> None:
    from synapscribe_cdk.stacks.network import FLEET_EGRESS_PORTS

    template = synth.templates["network"]
    fleet, props = _group(template, "GPU instances")
    egress = list(props["SecurityGroupEgress"])
    egress += [
        r["Properties"]
        for r in resources_of(template, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [fleet, "GroupId"]}
    ]
    assert egress
    for rule in egress:
        assert rule["IpProtocol"] == "tcp", rule
        assert rule["FromPort"] == rule["ToPort"] and rule["FromPort"] in FLEET_EGRESS_PORTS, rule
    assert set(FLEET_EGRESS_PORTS) == {443, 80}
    assert {r["FromPort"] for r in egress if r.get("CidrIp") == "0.0.0.0/0"} == {443, 80}


def test_nat_instance_admits_the_lambdas_and_the_fleet(synth: Synthesized) -> None:
    template = synth.templates["network"]
    (eni,) = resources_of(template, "AWS::EC2::NetworkInterface").values()
    (nat_sg,) = eni["Properties"]["GroupSet"]
    (launch,) = resources_of(template, "AWS::EC2::LaunchTemplate").values()
    assert launch["Properties"]["LaunchTemplateData"]["SecurityGroupIds"] == [nat_sg]
    fleet, _ = _group(template, "GPU instances")
    edge, _ = _group(template, "SynapScribe Lambdas")
    admitted = {
        (r["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0], r["Properties"]["FromPort"])
        for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == nat_sg
    }
    assert admitted == {(edge, 443), (fleet, 443), (fleet, 80)}
    (nat_sg_id,) = [
        k for k in resources_of(template, "AWS::EC2::SecurityGroup") if nat_sg["Fn::GetAtt"][0] == k
    ]
    assert not template["Resources"][nat_sg_id]["Properties"].get("SecurityGroupIngress")
    # And the fleet's subnets route through it, like the Lambdas'.
    via_nat = [
        r
        for r in resources_of(template, "AWS::EC2::Route").values()
        if "NetworkInterfaceId" in r["Properties"]
    ]
    assert len(via_nat) == 2 * len(synth.platform.config.zones_in("eu-west-1"))


def test_only_the_nat_instance_has_a_public_subnet(synth: Synthesized) -> None:
    template = synth.templates["network"]
    public = {
        k
        for k, s in resources_of(template, "AWS::EC2::Subnet").items()
        if s["Properties"]["MapPublicIpOnLaunch"]
    }
    (eni,) = resources_of(template, "AWS::EC2::NetworkInterface").values()
    assert eni["Properties"]["SubnetId"]["Ref"] in public
    (group,) = resources_of(template, "AWS::AutoScaling::AutoScalingGroup").values()
    assert {s["Ref"] for s in group["Properties"]["VPCZoneIdentifier"]} <= public
    for balancer in resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values():
        assert not {s["Ref"] for s in balancer["Properties"]["Subnets"]} & public


def _lambda_roles(synth: Synthesized) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(stack, role properties, function properties) of the platform's own functions."""
    found = []
    for stack, template in synth.templates.items():
        roles = resources_of(template, "AWS::IAM::Role")
        for fn in resources_of(template, "AWS::Lambda::Function").values():
            handler = fn["Properties"].get("Handler", "")
            if handler.startswith("synapscribe.") or handler in (
                "drain_instance.handler",
                "budget_stop.handler",
            ):
                role = roles[fn["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
                found.append((stack, role, fn["Properties"]))
    return found


def test_lambda_roles_log_only_to_their_own_log_group(synth: Synthesized) -> None:
    found = _lambda_roles(synth)
    assert len(found) == 5  # WebSocket handler, validation, sweeper, drain, budget stop
    for stack, role, fn in found:
        managed = _flat(role.get("ManagedPolicyArns", []))
        assert "AWSLambdaBasicExecutionRole" not in managed, (stack, fn["Handler"])
        log_group = fn["LoggingConfig"]["LogGroup"]["Ref"]
        statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
        logs = [s for s in statements if any(a.startswith("logs:") for a in s["Action"])]
        assert logs == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [log_group, "Arn"]},
            }
        ], (stack, fn["Handler"])
        # No AWS managed policy: the VPC functions' network interfaces are an inline policy.
        assert managed.count(":iam::aws:policy/") == 0, (stack, managed)
        ec2 = [s for s in statements if any(a.startswith("ec2:") for a in s["Action"])]
        assert bool(ec2) == ("VpcConfig" in fn), (stack, fn["Handler"])
        if ec2:
            _interfaces_stay_in_the_functions_subnets(ec2, fn["VpcConfig"])


def _interfaces_stay_in_the_functions_subnets(statements: list[dict[str, Any]], vpc: dict[str, Any]) -> None:
    """Every ec2 action names the function's own subnets and security group, or (interfaces,
    whose ids are made at creation) is limited to them by ec2:Subnet; only Describe* is on *."""
    subnets = [s for s in vpc["SubnetIds"]]
    for statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if resources == ["*"]:
            assert all(a.startswith("ec2:Describe") for a in statement["Action"]), statement
            continue
        flat = _flat(resources)
        if "network-interface/*" in flat:
            condition = statement["Condition"]["ArnEquals"]["ec2:Subnet"]
            assert len(condition) == len(subnets)
            for subnet in subnets:
                assert _flat(subnet) in _flat(condition)
        else:
            assert statement["Action"] == "ec2:CreateNetworkInterface", statement
            for subnet in subnets:
                assert _flat(subnet) in flat
            for group in vpc["SecurityGroupIds"]:
                assert _flat(group) in flat


def test_default_security_group_is_restricted(synth: Synthesized) -> None:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert context["@aws-cdk/aws-ec2:restrictDefaultSecurityGroup"] is True
    restrict = resources_of(synth.templates["network"], "Custom::VpcRestrictDefaultSG")
    assert len(restrict) == 1


# ---------------------------------------------------------------------------------------------
# Health-check grace against vLLM's start-up


def test_health_check_grace_outlasts_vllm_start(synth: Synthesized) -> None:
    from synapscribe_cdk.constructs.gpu_fleet import BOOT_MARGIN_SECONDS

    vllm = load_platform().vllm
    (group,) = resources_of(synth.templates["compute"], "AWS::AutoScaling::AutoScalingGroup").values()
    grace = group["Properties"]["HealthCheckGracePeriod"]
    assert grace == vllm.start_timeout_seconds + BOOT_MARGIN_SECONDS
    assert grace > vllm.start_timeout_seconds > vllm.ready_timeout_seconds
    assert grace > load_platform().fleet.host_startup_seconds
    assert BOOT_MARGIN_SECONDS >= 120
    # Warm-up is the expected start-up: a new host counts as capacity (and blocks scale-in) until
    # it serves, not for the whole grace.
    assert group["Properties"]["DefaultInstanceWarmup"] == load_platform().fleet.host_startup_seconds


def test_grace_follows_the_platform(tmp_path: Any) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_iam as iam
    from synapscribe_cdk.config import Capacity
    from synapscribe_cdk.constructs.gpu_fleet import BOOT_MARGIN_SECONDS, GpuFleet

    data = load_platform().model_dump()
    data["vllm"].update(ready_timeout_seconds=3000, start_timeout_seconds=3300)
    data["fleet"].update(host_startup_seconds=3600)
    platform = parse_platform(data)
    stack = Stack(App(outdir=str(tmp_path)), "S", env={"account": "123456789012", "region": "eu-west-1"})
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["eu-west-1a", "eu-west-1b"], nat_gateways=0)
    GpuFleet(
        stack,
        "Fleet",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        security_group=ec2.SecurityGroup(stack, "Sg", vpc=vpc),
        role=iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com")),
        ami_parameter="/x/ami",
        instance_types=["g5.2xlarge"],
        root_volume_gib=100,
        capacity=Capacity(min=0, max=1, desired=1),
        deploy_env={},
        environment="dev",
        target_group_arn="arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/x/1",
        vllm=platform.vllm,
        host=platform.host,
        fleet=platform.fleet,
    )
    from aws_cdk.assertions import Template

    # The expected start-up (3600 s) now outlasts vLLM's start timeout: the grace follows it.
    Template.from_stack(stack).has_resource_properties(
        "AWS::AutoScaling::AutoScalingGroup",
        {"HealthCheckGracePeriod": 3600 + BOOT_MARGIN_SECONDS, "DefaultInstanceWarmup": 3600},
    )


@pytest.mark.parametrize(
    ("ready", "start", "problem"),
    [(1800, 1800, "must be shorter"), (1900, 1800, "must be shorter"), (10, 1800, "ready_timeout_seconds")],
)
def test_vllm_timeouts_are_validated(ready: int, start: int, problem: str) -> None:
    data = load_platform().model_dump()
    data["vllm"].update(ready_timeout_seconds=ready, start_timeout_seconds=start)
    with pytest.raises(PlatformConfigError, match=problem):
        parse_platform(data)


def test_ansible_reads_the_vllm_timeouts_from_the_platform() -> None:
    defaults = yaml.safe_load((REPO / "ansible/roles/vllm/defaults/main.yml").read_text())
    for name in ("start_timeout_seconds", "ready_timeout_seconds"):
        assert defaults[f"vllm_{name}"] == f"{{{{ synapscribe_platform.vllm.{name} }}}}", name
    spec = yaml.safe_load((REPO / "ansible/roles/vllm/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    for name in ("vllm_start_timeout_seconds", "vllm_ready_timeout_seconds"):
        assert "default" not in options[name], f"{name}: the default is platform.yaml's, not a copy"
    exported = load_platform().as_dict()["vllm"]
    assert exported["start_timeout_seconds"] > exported["ready_timeout_seconds"] > 0


def test_every_function_logs_to_a_retained_group(synth: Synthesized) -> None:
    """CDK's own helper functions too (bucket notifications, auto-delete, default security group):
    without a group of their own, Lambda makes /aws/lambda/<name> on first use and keeps it forever."""
    days = synth.platform.config.log_retention_days
    helpers = 0
    for stack, template in synth.templates.items():
        groups = resources_of(template, "AWS::Logs::LogGroup")
        for name, fn in resources_of(template, "AWS::Lambda::Function").items():
            group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert groups[group]["Properties"]["RetentionInDays"] == days, (stack, name)
            if (
                not fn["Properties"]
                .get("Handler", "")
                .startswith(("synapscribe.", "drain_instance.", "budget_stop."))
            ):
                helpers += 1
                assert group in fn["DependsOn"], (stack, name, "Lambda would create the group first")
    assert helpers >= 3  # bucket notifications, auto-delete objects, default security group
