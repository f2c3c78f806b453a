"""The Network stack: no NAT gateway, gateway endpoints, security groups, the internal balancer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synapscribe.platform import load_platform
from synth_support import Synthesized, resources_of


def _group_id(template: dict[str, Any], description_start: str) -> str:
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    matches = [
        k for k, g in groups.items() if g["Properties"]["GroupDescription"].startswith(description_start)
    ]
    assert len(matches) == 1, (description_start, matches)
    return matches[0]


def _ingress(template: dict[str, Any], group: str) -> list[dict[str, Any]]:
    """Every ingress rule of `group`, inline or as a separate resource."""
    rules = list(
        resources_of(template, "AWS::EC2::SecurityGroup")[group]["Properties"].get("SecurityGroupIngress", [])
    )
    for rule in resources_of(template, "AWS::EC2::SecurityGroupIngress").values():
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}:
            rules.append(rule["Properties"])
    return rules


def test_no_nat_gateway_and_gateway_endpoints(synth: Synthesized) -> None:
    template = synth.template("network")
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    endpoints = resources_of(synth.templates["network"], "AWS::EC2::VPCEndpoint").values()
    services = {
        json.dumps(e["Properties"]["ServiceName"]): e["Properties"].get("VpcEndpointType", "Gateway")
        for e in endpoints
    }
    assert len(services) == 2
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)
    assert set(services.values()) == {"Gateway"}
    # An execute-api interface endpoint cannot reach a WebSocket API's @connections (see network.py).
    assert not any("execute-api" in s for s in services)


def test_private_subnets_route_through_the_nat_interface(synth: Synthesized) -> None:
    """Routes name the NAT's fixed network interface, not an instance: a replaced instance takes
    the same interface, so no route changes (constructs/nat_instance.py)."""
    template = synth.templates["network"]
    assert not resources_of(template, "AWS::EC2::Instance")
    (eni_id, eni) = next(iter(resources_of(template, "AWS::EC2::NetworkInterface").items()))
    assert eni["Properties"]["SourceDestCheck"] is False
    default_routes = [r["Properties"] for r in resources_of(template, "AWS::EC2::Route").values()]
    via_nat = [r for r in default_routes if r.get("NetworkInterfaceId") == {"Ref": eni_id}]
    # One per private subnet: the Lambdas' (edge) and the GPU fleet's.
    assert len(via_nat) == 2 * len(synth.platform.config.zones_in("eu-west-1"))
    assert all(r["DestinationCidrBlock"] == "0.0.0.0/0" for r in via_nat)


def test_nat_instance_is_a_group_of_one_that_takes_the_interface(synth: Synthesized) -> None:
    from synapscribe_cdk.constructs.nat_instance import is_arm

    config = synth.platform.config
    template = synth.templates["network"]
    (eni_id,) = resources_of(template, "AWS::EC2::NetworkInterface")
    (group,) = resources_of(template, "AWS::AutoScaling::AutoScalingGroup").values()
    props = group["Properties"]
    assert (props["MinSize"], props["MaxSize"]) == ("1", "1")
    assert props["AutoScalingGroupName"] == f"synapscribe-{config.name}-nat"
    assert props["HealthCheckType"] == "EC2"
    eni = template["Resources"][eni_id]["Properties"]
    assert props["VPCZoneIdentifier"] == [eni["SubnetId"]], "the group launches in the interface's zone"
    (launch,) = resources_of(template, "AWS::EC2::LaunchTemplate").values()
    data = launch["Properties"]["LaunchTemplateData"]
    assert data["InstanceType"] == config.nat_instance_type and is_arm(config.nat_instance_type)
    script = json.dumps(data["UserData"])
    assert "attach-network-interface" in script and eni_id in script and "--device-index 1" in script
    assert "--no-source-dest-check" in script and "MASQUERADE" in script and config.vpc_cidr in script
    # The role may take the interface and change its own instances only.
    role_policies = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "ec2:AttachNetworkInterface" in json.dumps(s["Action"])
    ]
    conditioned = [s for s in role_policies if "Condition" in s]
    assert len(conditioned) == 1
    tag = conditioned[0]["Condition"]["StringEquals"]["aws:ResourceTag/aws:autoscaling:groupName"]
    assert tag == props["AutoScalingGroupName"]
    assert all("Condition" in s or eni_id in json.dumps(s["Resource"]) for s in role_policies)
    health = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "autoscaling:SetInstanceHealth"
    ]
    assert len(health) == 1 and json.dumps(health[0]["Resource"]).endswith(
        f'autoScalingGroupName/{props["AutoScalingGroupName"]}"]]}}'
    )


def test_nat_alarm_when_no_instance_is_in_service(synth: Synthesized) -> None:
    template = synth.templates["network"]
    (group,) = resources_of(template, "AWS::AutoScaling::AutoScalingGroup").values()
    assert group["Properties"]["MetricsCollection"][0]["Metrics"] == ["GroupInServiceInstances"]
    (alarm,) = resources_of(template, "AWS::CloudWatch::Alarm").values()
    props = alarm["Properties"]
    assert props["MetricName"] == "GroupInServiceInstances" and props["Statistic"] == "Minimum"
    assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1
    assert props["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": group["Properties"]["AutoScalingGroupName"]}
    ]
    assert props["TreatMissingData"] == "breaching"


def test_prod_egresses_through_a_nat_gateway_per_zone_and_dev_through_the_instance(
    synth: Synthesized, prod_assembly: Path
) -> None:
    """Prod does not hang its egress on one small box: cdk.json's `egress` differs by environment."""
    from synapscribe_cdk.application import default_context
    from synapscribe_cdk.config import ENVIRONMENTS_KEY, load_environment

    prod_config = load_environment(default_context()[ENVIRONMENTS_KEY], "prod")
    assert (synth.platform.config.egress, prod_config.egress) == ("nat_instance", "nat_gateway")
    prod = json.loads((prod_assembly / "SynapScribe-prod-Network.template.json").read_text())
    zones = prod_config.zones_in("eu-west-1")
    gateways = resources_of(prod, "AWS::EC2::NatGateway")
    assert len(gateways) == len(zones) == prod_config.max_azs
    assert not resources_of(prod, "AWS::AutoScaling::AutoScalingGroup")
    assert not resources_of(prod, "AWS::EC2::NetworkInterface")
    # Each private subnet's default route goes to a gateway (one per zone), none to an interface.
    defaults = [
        r["Properties"] for r in resources_of(prod, "AWS::EC2::Route").values()
        if r["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0" and "GatewayId" not in r["Properties"]
    ]  # fmt: skip
    assert len(defaults) == 2 * len(zones)  # edge and fleet subnets
    assert {r["NatGatewayId"]["Ref"] for r in defaults} == set(gateways)
    dev = synth.templates["network"]
    assert not resources_of(dev, "AWS::EC2::NatGateway")
    assert len(resources_of(dev, "AWS::EC2::NetworkInterface")) == 1


def test_an_environment_may_ask_for_nat_gateways(tmp_path: Any) -> None:
    from aws_cdk import App, Environment
    from aws_cdk.assertions import Template
    from synapscribe_cdk.application import default_context
    from synapscribe_cdk.config import ENVIRONMENTS_KEY, load_environment
    from synapscribe_cdk.stacks.network import NetworkStack

    raw = default_context()[ENVIRONMENTS_KEY]
    raw["dev"]["egress"] = "nat_gateway"
    config = load_environment(raw, "dev")
    stack = NetworkStack(
        App(outdir=str(tmp_path)),
        "N",
        config=config,
        platform=load_platform(),
        env=Environment(account="123456789012", region="eu-west-1"),
    )
    template = Template.from_stack(stack)
    zones = len(config.zones_in("eu-west-1"))
    template.resource_count_is("AWS::EC2::NatGateway", zones)
    template.resource_count_is("AWS::AutoScaling::AutoScalingGroup", 0)
    template.resource_count_is("AWS::EC2::NetworkInterface", 0)
    assert not stack.nat_alarms


def test_agentcore_port_only_from_the_lambdas(synth: Synthesized) -> None:
    template = synth.templates["network"]
    ports = load_platform().ports
    edge = _group_id(template, "SynapScribe Lambdas")
    alb = _group_id(template, "AgentCore internal balancer")
    fleet = _group_id(template, "GPU instances")
    alb_in = _ingress(template, alb)
    assert [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in alb_in] == [
        (ports.agentcore, ports.agentcore, {"Fn::GetAtt": [edge, "GroupId"]})
    ]
    fleet_in = _ingress(template, fleet)
    # From the balancer, and from the Lambdas directly (lecture-affinity routing: edge/affinity.py).
    assert sorted((r["FromPort"], r["ToPort"], str(r["SourceSecurityGroupId"])) for r in fleet_in) == sorted(
        (ports.agentcore, ports.agentcore, str({"Fn::GetAtt": [g, "GroupId"]})) for g in (alb, edge)
    )
    every_ingress = resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    inline = [
        r
        for g in resources_of(template, "AWS::EC2::SecurityGroup").values()
        for r in g["Properties"].get("SecurityGroupIngress", [])
    ]
    for rule in [*inline, *(r["Properties"] for r in every_ingress)]:
        for closed in (ports.vllm, ports.tts):
            assert not rule.get("FromPort", 0) <= closed <= rule.get("ToPort", -1), rule
        assert rule.get("CidrIp") != "0.0.0.0/0" or rule.get("FromPort") == 443, rule


def test_internal_balancer_checks_ready(synth: Synthesized) -> None:
    template = synth.template("network")
    ports = load_platform().ports
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal", "Type": "application"}
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": ports.agentcore,
            "Protocol": "HTTP",
            "HealthCheckPath": "/ready",
            "Matcher": {"HttpCode": "200"},
            "TargetGroupAttributes": [
                {
                    "Key": "deregistration_delay.timeout_seconds",
                    "Value": str(synth.platform.config.drain_seconds),
                },
                {"Key": "stickiness.enabled", "Value": "false"},
            ],
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": ports.agentcore, "Protocol": "HTTP"}
    )


def test_zones_are_listed_not_looked_up(synth: Synthesized) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert not manifest.get("missing"), "synth must not need context lookups (no AWS access)"


def _nat_boot_script(synth: Synthesized) -> str:
    from iam_eval import resolve

    template = synth.templates["network"]
    (launch,) = resources_of(template, "AWS::EC2::LaunchTemplate").values()
    pseudo = {"AWS::Region": "eu-west-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    user_data = resolve(launch["Properties"]["LaunchTemplateData"]["UserData"], pseudo, lambda _: "eni-0abc")
    return str(user_data["Fn::Base64"])


def test_nat_boot_script_is_valid_bash(synth: Synthesized, tmp_path: Any) -> None:
    import subprocess

    script = _nat_boot_script(synth)
    assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
    assert "--network-interface-id eni-0abc --device-index 1" in script
    assert "ip_forward = 1" in script and "rp_filter = 2" in script  # forwards; loose reverse path
    path = tmp_path / "nat-boot.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def _run_boot(synth: Synthesized, tmp_path: Any, failing: str) -> tuple[int, list[str]]:
    """Run the boot script with every outside command stubbed (each logs its arguments; the one
    named `failing` fails) and sysctl's file in tmp_path."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("curl", "aws", "dnf", "sysctl", "iptables", "service", "systemctl", "sleep"):
        fail = f'case "$*" in *{failing}*) exit 1;; esac\n' if failing else ""
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{fail}echo i-0123\n')
        stub.chmod(0o755)
    script = _nat_boot_script(synth).replace("/etc/sysctl.d/", f"{tmp_path}/")
    path = tmp_path / "nat-boot.sh"
    path.write_text(script)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, log.read_text().splitlines()


def test_nat_boot_takes_the_interface(synth: Synthesized, tmp_path: Any) -> None:
    code, calls = _run_boot(synth, tmp_path, failing="")
    assert code == 0
    attach = [c for c in calls if "attach-network-interface" in c]
    assert attach == [
        "aws ec2 attach-network-interface --region eu-west-1 --instance-id i-0123 "
        "--network-interface-id eni-0abc --device-index 1"
    ]
    assert not [c for c in calls if "set-instance-health" in c]
    assert any("--no-source-dest-check" in c for c in calls)


def test_nat_boot_failure_marks_the_instance_unhealthy(synth: Synthesized, tmp_path: Any) -> None:
    """A NAT that cannot forward must not stay in service: Auto Scaling replaces it."""
    code, calls = _run_boot(synth, tmp_path, failing="install")
    assert code != 0
    assert calls[-1] == (
        "aws autoscaling set-instance-health --region eu-west-1 --instance-id i-0123 --health-status Unhealthy"
    )
    assert not [c for c in calls if "attach-network-interface" in c]


def test_zones_named_on_the_command_line_are_the_vpcs() -> None:
    """`-c zones=` (what preflight prints) puts every subnet in those zones, by name, offline."""
    from aws_cdk import App, Environment
    from aws_cdk.assertions import Template
    from synapscribe_cdk.application import build_config, default_context
    from synapscribe_cdk.stacks.network import NetworkStack

    app = App(context={**default_context(), "zones": "us-west-2b,us-west-2c"})
    config = build_config(app)
    stack = NetworkStack(
        app,
        "Zones",
        config=config,
        platform=load_platform(),
        env=Environment(account="123456789012", region="us-west-2"),
    )
    subnets = Template.from_stack(stack).find_resources("AWS::EC2::Subnet")
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets.values()]
    # public, edge and fleet subnets in each of the two zones
    assert sorted(zones) == ["us-west-2b"] * 3 + ["us-west-2c"] * 3
