"""The spot GPU fleet: launch template (the image from the environment's SSM channel at each launch,
IMDSv2, encrypted root) and Auto Scaling group."""

from __future__ import annotations

from aws_cdk import Duration, Size
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct
from synapscribe.platform import ENV_PLACEHOLDER, Fleet, Host, LogGroups, Vllm
from synapscribe.scaling import ScalingSettings

from synapscribe_cdk.config import Capacity
from synapscribe_cdk.constructs.fleet_scaling import FleetScaling

#: Boot, the NVIDIA driver, cloud-init and user data before systemd starts vLLM's unit, plus the
#: balancer's healthy threshold (2 checks of 15 s) after /ready first answers 200.
BOOT_MARGIN_SECONDS = 300


def health_check_grace(vllm: Vllm, fleet: Fleet) -> Duration:
    """How long Auto Scaling ignores the balancer's health checks of a new instance: longer than
    vLLM's unit may take to start (TimeoutStartSec, which covers its readiness poll) and than the
    expected start-up (fleet.host_startup_seconds), so an instance that is still loading the model
    is never replaced as unhealthy."""
    return Duration.seconds(max(vllm.start_timeout_seconds, fleet.host_startup_seconds) + BOOT_MARGIN_SECONDS)


def instance_warmup(fleet: Fleet) -> Duration:
    """The group's default instance warm-up: how long after InService a new instance's metrics stay
    out of the aggregates target tracking reads, while it counts as capacity already added and
    scale-in waits ("Set the default instance warmup for an Auto Scaling group", Amazon EC2 Auto
    Scaling User Guide). The host serves after the expected start-up, fleet.host_startup_seconds
    from launch, and InService comes shortly after launch: the start-up bounds the warm-up."""
    return Duration.seconds(fleet.host_startup_seconds)


def cloudwatch_agent_script(host: Host, log_groups: LogGroups, environment: str) -> list[str]:
    """User data lines: render the baked agent configuration for `environment` and (re)start the
    agent with it.

    One AMI serves every environment (it is baked once per region), so the bake leaves
    fleet.log_groups' placeholder in the template (ansible/roles/cloudwatch_agent) and leaves the
    agent stopped; only here, at boot, is the environment known. The names filled in are those
    CDK creates and lets the instance role write (constructs/fleet_observability.py). `fetch-config
    -s` translates the file, then enables and restarts the agent's unit (amazon-cloudwatch-agent-ctl
    in aws/amazon-cloudwatch-agent, packaging/dependencies). It runs before AgentCore's restart, so
    the EMF listener is up for AgentCore's and the start-up timeline's first documents. A failure
    stops the user data like any other (set -e): the host never serves, its health check fails and
    the group replaces it, where a host shipping no logs would go unnoticed."""
    agent = host.cloudwatch_agent
    log_groups.names(environment)  # refuses a name that cannot be part of a log group
    # Each brace in a bracket expression: literal in any sed regular expression syntax.
    placeholder = "".join(f"[{c}]" if c in "{}" else c for c in ENV_PLACEHOLDER)
    return [
        f"sed -e 's/{placeholder}/{environment}/g' {agent.config_template} > {agent.config}.tmp",
        f"chmod 0644 {agent.config}.tmp",
        f"mv {agent.config}.tmp {agent.config}",
        f"{agent.ctl} -a fetch-config -m ec2 -c file:{agent.config} -s",
    ]


def deploy_env_script(host: Host, values: dict[str, str], agent: list[str] | None = None) -> list[str]:
    """User data lines: write the deploy environment file (platform.yaml host.deploy_env_file, read
    by AgentCore's unit only), run the `agent` lines (cloudwatch_agent_script), start the services
    that are not running yet and restart AgentCore, so it reads the file."""
    deploy_env = host.deploy_env_file
    vllm, tts, agentcore = host.units.services()
    lines = [
        "set -euo pipefail",
        f"install -d -m 0755 {host.config_dir}",
        f"cat > {deploy_env}.tmp <<'SYNAPSCRIBE_ENV'",
        *(f"{name}={value}" for name, value in sorted(values.items())),
        "SYNAPSCRIBE_ENV",
        f"chmod 0644 {deploy_env}.tmp",
        f"mv {deploy_env}.tmp {deploy_env}",
        *(agent or []),
        "systemctl daemon-reload",
        f"systemctl enable {vllm} {tts} {agentcore}",
        # Only AgentCore reads the deploy environment. User data runs in cloud-final, which is
        # ordered after multi-user.target (cloud-init's unit: After=multi-user.target), and that
        # target waits for vLLM's start job, which ends when its ExecStartPost sees the model: vLLM
        # is ready by now. Restarting it would load the model a second time on every launch.
        f"systemctl start {vllm} {tts}",
        f"systemctl restart {agentcore}",
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
        root_volume_initialization_mib_per_second: int | None = None,
        deploy_env: dict[str, str],
        environment: str,
        target_group_arn: str,
        vllm: Vllm,
        host: Host,
        fleet: Fleet,
        group_name: str | None = None,
        scaling: ScalingSettings | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        user_data = ec2.UserData.for_linux()
        agent = cloudwatch_agent_script(host, fleet.log_groups, environment)
        user_data.add_commands(*deploy_env_script(host, deploy_env, agent))
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            # `resolve:ssm:<the environment's channel>`: EC2 reads the parameter at each launch, so
            # `synapscribe ami promote` + an instance refresh roll out a new image with no deploy.
            machine_image=ec2.MachineImage.resolve_ssm_parameter_at_launch(
                ami_parameter, os=ec2.OperatingSystemType.LINUX
            ),
            role=role,
            security_group=security_group,
            user_data=user_data,
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            # Private subnets: the fleet reaches the internet only through the NAT (cdk.json egress).
            associate_public_ip_address=False,
            block_devices=[
                ec2.BlockDevice(
                    # The root volume of the AMI (Ubuntu, ami/synapscribe.pkr.hcl).
                    device_name=host.root_device,
                    volume=ec2.BlockDeviceVolume.ebs(
                        root_volume_gib,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                        # Provisioned rate: the snapshot's blocks (the weights) arrive at a
                        # known rate, not on first read (cdk.json, config.EnvironmentConfig).
                        volume_initialization_rate=(
                            Size.mebibytes(root_volume_initialization_mib_per_second)
                            if root_volume_initialization_mib_per_second
                            else None
                        ),
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
                grace_period=health_check_grace(vllm, fleet),
            ),
            default_instance_warmup=instance_warmup(fleet),
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
                # A cost ceiling for the night: questions may warm hosts, never more than this.
                max_capacity=capacity.night_max,
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
