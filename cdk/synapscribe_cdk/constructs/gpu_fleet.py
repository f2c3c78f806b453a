"""The spot GPU fleet: launch template (AMI from SSM, IMDSv2, encrypted root) and Auto Scaling group."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct
from synapscribe.platform import Vllm
from synapscribe.simulate.policy import ScalingSettings

from synapscribe_cdk.config import Capacity
from synapscribe_cdk.constructs.fleet_scaling import FleetScaling

#: The AMI (Ubuntu, ami/synapscribe.pkr.hcl) boots from this device.
ROOT_DEVICE = "/dev/sda1"
DEPLOY_ENV = "/etc/synapscribe/deploy.env"
UNITS = ("synapscribe-vllm.service", "synapscribe-tts.service", "synapscribe-agentcore.service")
#: Boot, the NVIDIA driver, cloud-init and user data before systemd starts vLLM's unit, plus the
#: balancer's healthy threshold (2 checks of 15 s) after /ready first answers 200.
BOOT_MARGIN_SECONDS = 300


def health_check_grace(vllm: Vllm) -> Duration:
    """How long Auto Scaling ignores the balancer's health checks of a new instance: longer than
    vLLM's unit may take to start (TimeoutStartSec, which covers its readiness poll), so an
    instance that is still loading the model is never replaced as unhealthy."""
    return Duration.seconds(vllm.start_timeout_seconds + BOOT_MARGIN_SECONDS)


def deploy_env_script(values: dict[str, str]) -> list[str]:
    """User data lines: write deploy.env (read by AgentCore's unit), then start the services."""
    lines = [
        "set -euo pipefail",
        "install -d -m 0755 /etc/synapscribe",
        f"cat > {DEPLOY_ENV}.tmp <<'SYNAPSCRIBE_ENV'",
        *(f"{name}={value}" for name, value in sorted(values.items())),
        "SYNAPSCRIBE_ENV",
        f"chmod 0644 {DEPLOY_ENV}.tmp",
        f"mv {DEPLOY_ENV}.tmp {DEPLOY_ENV}",
        "systemctl daemon-reload",
        f"systemctl enable {' '.join(UNITS)}",
        f"systemctl restart {' '.join(UNITS)}",
    ]
    return lines


class GpuFleet(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        role: iam.IRole,
        ami_parameter: str,
        instance_types: list[str],
        root_volume_gib: int,
        capacity: Capacity,
        deploy_env: dict[str, str],
        target_group_arn: str,
        vllm: Vllm,
        group_name: str | None = None,
        scaling: ScalingSettings | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(*deploy_env_script(deploy_env))
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            # Resolved by CloudFormation at deploy time (an SSM parameter type), never looked up.
            machine_image=ec2.MachineImage.from_ssm_parameter(
                ami_parameter, os=ec2.OperatingSystemType.LINUX
            ),
            role=role,
            security_group=security_group,
            user_data=user_data,
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            # Private subnets: the fleet reaches the internet only through the NAT instance.
            associate_public_ip_address=False,
            block_devices=[
                ec2.BlockDevice(
                    device_name=ROOT_DEVICE,
                    volume=ec2.BlockDeviceVolume.ebs(
                        root_volume_gib,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            # A fixed name: the WebSocket handler starts the group by it, AgentCore's metrics carry it.
            auto_scaling_group_name=group_name,
            vpc=vpc,
            vpc_subnets=subnets,
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=self.launch_template,
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=0,
                    on_demand_percentage_above_base_capacity=0,
                    spot_allocation_strategy=autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                ),
                # Listed in order of preference; the first is the design's g5.2xlarge.
                launch_template_overrides=[
                    autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                    for t in instance_types
                ],
            ),
            capacity_rebalance=True,
            # No desired capacity in the template: a deployment would reset it (e.g. undo the night's
            # scale-to-zero). The minimum and the scheduled actions drive it.
            min_capacity=capacity.min,
            max_capacity=capacity.max,
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                grace_period=health_check_grace(vllm),
            ),
            default_instance_warmup=health_check_grace(vllm),
            group_metrics=[autoscaling.GroupMetrics.all()],
        )
        cfn_group = self.group.node.default_child
        assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
        # The target group (Network stack) is attached by ARN; its security rules are set there.
        cfn_group.target_group_arns = [target_group_arn]
        if capacity.night_scale_in_cron and capacity.morning_scale_out_cron:
            self.group.scale_on_schedule(
                "NightScaleIn",
                schedule=autoscaling.Schedule.expression(capacity.night_scale_in_cron),
                time_zone=capacity.time_zone,
                min_capacity=0,
                desired_capacity=0,
                max_capacity=capacity.max,
            )
            self.group.scale_on_schedule(
                "MorningScaleOut",
                schedule=autoscaling.Schedule.expression(capacity.morning_scale_out_cron),
                time_zone=capacity.time_zone,
                # With load scaling the day's size is a floor (MinSize), not only a starting point.
                min_capacity=capacity.desired if scaling else capacity.min,
                desired_capacity=capacity.desired,
                max_capacity=capacity.max,
            )
        #: The load scaling's own alarm (shown on the dashboard, not sent to operators).
        self.scaling_alarms: list[cloudwatch.Alarm] = []
        if scaling is not None:
            if group_name is None:
                raise ValueError("load scaling needs the group's name (its metric's dimension)")
            self.scaling = FleetScaling(
                self, "Scaling", group=self.group, group_name=group_name, scaling=scaling
            )
            self.scaling_alarms.append(self.scaling.scale_in_alarm)
