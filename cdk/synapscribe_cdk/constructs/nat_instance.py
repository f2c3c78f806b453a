"""A NAT instance that replaces itself: an Auto Scaling group of one behind a fixed network interface.

The private subnets route 0.0.0.0/0 to one network interface (ENI) that CloudFormation owns, not
to an instance. The group keeps one instance running; at boot the instance attaches that ENI as
its second interface, turns off its source/destination check and masquerades the VPC's traffic.
When the instance fails its EC2 status checks (or is terminated), the group launches another,
which takes the same ENI, so the routes never change (the pattern of the fck-nat project; EC2 docs
"NAT instances" for the forwarding and the source/destination check). An alarm fires when the
group has had no instance in service for 10 minutes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from synapscribe_cdk.nag import acknowledge, wildcard_findings

#: Root device of Amazon Linux 2023.
ROOT_DEVICE = "/dev/xvda"


def is_arm(instance_type: str) -> bool:
    """Graviton families carry a `g` after the generation: t4g, c7gn, m6gd (not g5 or g4dn)."""
    return re.match(r"^[a-z]+\d+[a-z-]*g", instance_type.split(".")[0]) is not None


def boot_script(eni_ref: str, vpc_cidr: str) -> list[str]:
    """Forward and masquerade the VPC's traffic, then take the fixed ENI (retrying while a
    replaced instance still holds it). Any failing step marks the instance unhealthy, so the
    group replaces an instance that boots but cannot forward (EC2's status checks would pass)."""
    region = Aws.REGION
    return [
        "set -euo pipefail",
        "TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
        'INSTANCE=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" '
        "http://169.254.169.254/latest/meta-data/instance-id)",
        "unhealthy() {",
        f'  aws autoscaling set-instance-health --region {region} --instance-id "$INSTANCE" '
        "--health-status Unhealthy || true",
        "}",
        "trap unhealthy ERR",
        "dnf install -y iptables-services",
        # Loose reverse-path filtering: traffic arrives on the NAT interface (eth1) but its
        # route back leaves through the primary one, which strict filtering would drop.
        "printf 'net.ipv4.ip_forward = 1\\nnet.ipv4.conf.all.rp_filter = 2\\n"
        "net.ipv4.conf.default.rp_filter = 2\\n' > /etc/sysctl.d/90-nat.conf",
        "sysctl -p /etc/sysctl.d/90-nat.conf",
        f"iptables -t nat -A POSTROUTING -s {vpc_cidr} ! -d {vpc_cidr} -j MASQUERADE",
        "iptables -F FORWARD",
        "service iptables save",
        "systemctl enable --now iptables",
        f'aws ec2 modify-instance-attribute --region {region} --instance-id "$INSTANCE" --no-source-dest-check',
        "for attempt in $(seq 1 60); do",
        f'  if aws ec2 attach-network-interface --region {region} --instance-id "$INSTANCE" '
        f"--network-interface-id {eni_ref} --device-index 1; then exit 0; fi",
        "  sleep 10",
        "done",
        "unhealthy",
        "exit 1",
    ]


class SelfHealingNatProvider(ec2.NatProvider):
    """`ec2.Vpc(nat_gateway_provider=...)`: one NAT instance (group of one) in the first public
    subnet for every private subnet. `security_group` admits nothing until the stack allows it."""

    def __init__(self, *, instance_type: str, group_name: str, vpc_cidr: str) -> None:
        super().__init__()
        self._instance_type = instance_type
        self._group_name = group_name
        self._vpc_cidr = vpc_cidr
        self._gateways: list[ec2.GatewayConfig] = []
        self.security_group: ec2.SecurityGroup | None = None
        self.group: autoscaling.AutoScalingGroup | None = None
        self.launch_template: ec2.LaunchTemplate | None = None
        self.eni: ec2.CfnNetworkInterface | None = None

    @property
    def configured_gateways(self) -> list[ec2.GatewayConfig]:
        return self._gateways

    def configure_nat(
        self,
        *,
        nat_subnets: Sequence[ec2.PublicSubnet],
        private_subnets: Sequence[ec2.PrivateSubnet],
        vpc: ec2.IVpc,
    ) -> None:
        subnet = nat_subnets[0]
        scope = Construct(subnet, "Nat")
        self.security_group = ec2.SecurityGroup(
            scope,
            "Sg",
            vpc=vpc,
            description="SynapScribe NAT instance: forwards the egress of the private subnets",
            allow_all_outbound=True,
        )
        self.eni = ec2.CfnNetworkInterface(
            scope,
            "Interface",
            subnet_id=subnet.subnet_id,
            group_set=[self.security_group.security_group_id],
            source_dest_check=False,
            description="SynapScribe NAT: the private subnets' default route (kept across instances)",
        )
        for private in private_subnets:
            private.add_route(
                "DefaultRoute",
                router_type=ec2.RouterType.NETWORK_INTERFACE,
                router_id=self.eni.ref,
                enables_internet_connectivity=True,
            )
        self._gateways.append(ec2.GatewayConfig(az=subnet.availability_zone, gateway_id=self.eni.ref))
        self._instances(scope, vpc, subnet)

    def configure_subnet(self, subnet: Any) -> None:
        # Every private subnet already routes to the ENI (configure_nat); nothing more per subnet.
        return None

    def _instances(self, scope: Construct, vpc: ec2.IVpc, subnet: Any) -> None:
        assert self.security_group is not None and self.eni is not None
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="SynapScribe NAT instance: take the NAT interface, forward traffic",
        )
        own_instances = {"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": self._group_name}}
        instances = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/*"
        group_arn = (
            f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*:"
            f"autoScalingGroupName/{self._group_name}"
        )
        eni_arn = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:network-interface/{self.eni.ref}"
        statements = [
            iam.PolicyStatement(
                actions=["ec2:AttachNetworkInterface", "ec2:ModifyInstanceAttribute"],
                resources=[instances],
                conditions=own_instances,
            ),
            iam.PolicyStatement(actions=["ec2:AttachNetworkInterface"], resources=[eni_arn]),
            # The boot script reports a failed start so the group replaces the instance.
            iam.PolicyStatement(actions=["autoscaling:SetInstanceHealth"], resources=[group_arn]),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Instance ids are made at launch: the instance wildcard is limited by condition to this NAT "
            "group's own instances (its aws:autoscaling:groupName tag); a group ARN embeds a generated "
            "id, so the group is matched by its name.",
            wildcard_findings(scope, [instances, group_arn]),
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(*boot_script(self.eni.ref, self._vpc_cidr))
        cpu = ec2.AmazonLinuxCpuType.ARM_64 if is_arm(self._instance_type) else ec2.AmazonLinuxCpuType.X86_64
        self.launch_template = ec2.LaunchTemplate(
            scope,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(self._instance_type),
            # The public SSM parameter of the latest Amazon Linux 2023, resolved at deploy time.
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            role=role,
            security_group=self.security_group,
            user_data=user_data,
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name=ROOT_DEVICE,
                    volume=ec2.BlockDeviceVolume.ebs(
                        8, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3, delete_on_termination=True
                    ),
                )
            ],
        )
        self.group = autoscaling.AutoScalingGroup(
            scope,
            "Group",
            auto_scaling_group_name=self._group_name,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),  # the ENI's zone
            launch_template=self.launch_template,
            min_capacity=1,
            max_capacity=1,
            health_checks=autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(3)),
            group_metrics=[autoscaling.GroupMetrics(autoscaling.GroupMetric.IN_SERVICE_INSTANCES)],
        )
        acknowledge(
            self.group,
            "AwsSolutions-AS3",
            "The NAT group's only event worth a page is having no instance in service, which its alarm reports.",
        )

    def no_instance_alarm(self, scope: Construct) -> cloudwatch.Alarm:
        assert self.group is not None
        return cloudwatch.Metric(
            namespace="AWS/AutoScaling",
            metric_name="GroupInServiceInstances",
            dimensions_map={"AutoScalingGroupName": self._group_name},
            statistic="Minimum",
            period=Duration.minutes(5),
        ).create_alarm(
            scope,
            "NatNotInService",
            alarm_description=(
                "The NAT instance group has had no instance in service for 10 minutes: the Lambdas cannot "
                "reach @connections and the GPU instances lose egress. Auto Scaling keeps replacing it; "
                "check the group's activity (capacity for the type, the AMI parameter, the boot script's log)."
            ),
            threshold=1,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
