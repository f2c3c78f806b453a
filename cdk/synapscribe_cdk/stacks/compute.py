"""Compute: the spot GPU fleet behind AgentCore's balancer, its drain, its role and its alarms."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from constructs import Construct
from synapscribe.agentcore.settings import EMF_LOG_GROUP_VARIABLE
from synapscribe.host_timeline import METRICS_LOG_GROUP_OUTPUT
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs import permissions
from synapscribe_cdk.constructs.fleet_observability import FleetObservability, spot_and_drain_widget
from synapscribe_cdk.constructs.gpu_fleet import GpuFleet
from synapscribe_cdk.constructs.spot_drain import SpotDrain
from synapscribe_cdk.nag import acknowledge, wildcard_findings
from synapscribe_cdk.stacks.api import ApiStack
from synapscribe_cdk.stacks.data import DataStack
from synapscribe_cdk.stacks.network import FLEET_SUBNETS, NetworkStack


class ComputeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        platform: PlatformConfig,
        data: DataStack,
        network: NetworkStack,
        api: ApiStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.role = self._instance_role(platform, data, api, config.session_manager)
        # This environment's groups (platform.yaml's name templates with its name): never another's.
        log_groups = platform.fleet.log_groups.names(config.name)
        self.observability = FleetObservability(self, "Observability", role=self.role, log_groups=log_groups, retention_days=config.log_retention_days, retain=config.removal == "retain")  # fmt: skip
        fleet = GpuFleet(
            self,
            "Fleet",
            vpc=network.vpc,
            # The configured zones by name (config.zones_in): the ones preflight found offering
            # every instance type, never whatever a lookup would return.
            subnets=ec2.SubnetSelection(
                subnet_group_name=FLEET_SUBNETS, availability_zones=network.availability_zones
            ),
            security_group=network.fleet_sg,
            role=self.role,
            ami_parameter=platform.ami.channel(config.name).current,
            instance_types=config.instance_types,
            root_volume_gib=config.root_volume_gib,
            root_volume_initialization_mib_per_second=config.root_volume_initialization_mib_per_second,
            capacity=config.capacity,
            deploy_env={
                **data.resource_environment(),
                "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": api.stage.callback_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "SYNAPSCRIBE_FLEET_GROUP": config.fleet_group_name,
                # AgentCore's EMF documents and the start-up timeline name their group.
                EMF_LOG_GROUP_VARIABLE: log_groups["metrics"],
            },
            environment=config.name,
            target_group_arn=network.target_group.target_group_arn,
            vllm=platform.vllm,
            host=platform.host,
            fleet=platform.fleet,
            group_name=config.fleet_group_name,
            scaling=config.scaling,
        )
        self.group = fleet.group
        self.launch_template = fleet.launch_template
        acknowledge(
            self.group,
            "AwsSolutions-AS3",
            "Scaling and termination events go to EventBridge (the drain rules) and the fleet's alarms; "
            "no separate SNS notification is needed.",
        )
        acknowledge(
            self.group,
            "AwsSolutions-EC26",
            "The root volume is encrypted in the launch template; the rule reads only a group's direct "
            "LaunchTemplate property and fails on a mixed-instances policy (tests check the template).",
        )
        self.drain = SpotDrain(
            self,
            "Drain",
            group=self.group,
            target_group_arn=network.target_group.target_group_arn,
            target_port=platform.ports.agentcore,
            drain_seconds=config.drain_seconds,
            log_retention_days=config.log_retention_days,
        )
        self.alarms = [
            *self._balancer_alarms(network),
            self._no_healthy_hosts_alarm(network),
            self.drain.errors_alarm,
        ]
        data.alarm_topic.notify(self.alarms)
        self.dashboard = self.observability.add_dashboard(
            name=f"SynapScribe-{config.name}",
            alarms=[*self.alarms, *fleet.scaling_alarms],
            healthy_hosts=_target_group_metric(network, "HealthyHostCount", Duration.minutes(1)),
            max_num_seqs=platform.vllm.max_num_seqs,
            target_in_flight=config.scaling.target_in_flight_per_instance if config.scaling else None,
            bucket_name=data.resource_environment()["SYNAPSCRIBE_BUCKET"],
            spot_and_drains=spot_and_drain_widget(
                self.drain.notice_rule, self.drain.lifecycle_rule, self.drain.function
            ),
            group_name=config.fleet_group_name,
        )
        CfnOutput(self, "AutoScalingGroupName", value=self.group.auto_scaling_group_name)
        # What `synapscribe ami rollout` gives its instance refresh as the alarm specification: an
        # alarm going off fails the refresh and the image is rolled back.
        CfnOutput(self, "FleetAlarmNames", value=Fn.join(",", [a.alarm_name for a in self.alarms]))
        # Where `synapscribe bench full --stack-outputs` reads the hosts' start-up timelines.
        CfnOutput(
            self, METRICS_LOG_GROUP_OUTPUT, value=self.observability.log_groups["metrics"].log_group_name
        )

    def _instance_role(
        self, platform: PlatformConfig, data: DataStack, api: ApiStack, session_manager: bool
    ) -> iam.Role:
        """What AgentCore does: read uploads, transcripts and segments; write (and presign) answers;
        write segments and transcripts; keep the tables; push to clients."""
        prefixes = platform.storage.prefixes
        readable = [
            prefixes.lectures,
            prefixes.queries,
            prefixes.responses,
            prefixes.segments,
            prefixes.transcripts,
        ]
        bucket_arn = data.imported_bucket_arn(self)
        role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="SynapScribe GPU instance (AgentCore)",
        )
        statements = [
            # responses/ too: the presigned GET URLs AgentCore hands to clients carry its role.
            permissions.objects(["s3:GetObject"], bucket_arn, readable),
            # Listing only under the prefixes AgentCore reads. Without an unconditioned ListBucket
            # a missing key may answer 403 instead of 404 (a GetObject carries no s3:prefix), so
            # AgentCore tells "not made yet" or "gone" from a real denial by listing exactly that
            # key, which this grant allows (synapscribe.agentcore.aws.AwsIo._get).
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in readable]}},
            ),
            permissions.objects(
                ["s3:PutObject"], bucket_arn, [prefixes.responses, prefixes.segments, prefixes.transcripts]
            ),
            # What it wrote for a lecture deleted meanwhile (deleteLecture during transcription).
            permissions.objects(["s3:DeleteObject"], bucket_arn, [prefixes.segments, prefixes.transcripts]),
            permissions.tables(
                permissions.TABLE_ITEM_ACTIONS,
                [t.table_arn for field, t in data.tables.items() if field != "hosts_table"],
            ),
            # The host registry: each host writes and deletes its own item only, keyed by its role
            # session's user id (`ROLEID:i-…`, agentcore/registration.py), and reads nothing.
            iam.PolicyStatement(
                actions=["dynamodb:DeleteItem", "dynamodb:PutItem"],
                resources=[data.tables["hosts_table"].table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:userid}"]}},
            ),
            permissions.post_to_connections(api.imported_api_id(self), api.stage.stage_name),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        if session_manager:
            session = session_manager_statements(self)
            for statement in session:
                role.add_to_policy(statement)
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Session Manager's channel actions (ssmmessages) and the agent's message actions "
                "(ec2messages) support no resource-level permissions (Service Authorization Reference), "
                "so they are on *; the agent reports its own instance, whose id is made at launch "
                "(instance/*); parameters stop at the project's prefix (/synapscribe/).",
                wildcard_findings(self, [r for s in session for r in s.resources]),
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Object wildcards stop at the key prefixes AgentCore reads or writes, and @connections at this "
            "API's stage: the ids under them are made at run time.",
            wildcard_findings(self, [r for s in statements for r in s.resources]),
        )
        return role

    def _no_healthy_hosts_alarm(self, network: NetworkStack) -> cloudwatch.Alarm:
        """No instance passes /ready although the group wants some (not at night, at zero)."""
        period = Duration.minutes(5)
        desired = cloudwatch.Metric(
            namespace="AWS/AutoScaling",
            metric_name="GroupDesiredCapacity",
            dimensions_map={"AutoScalingGroupName": self.group.auto_scaling_group_name},
            statistic="Maximum",
            period=period,
        )
        healthy = _target_group_metric(network, "HealthyHostCount", period)
        starved = cloudwatch.MathExpression(
            expression="IF(desired > 0 AND FILL(healthy, 0) < 1, 1, 0)",
            using_metrics={"desired": desired, "healthy": healthy},
            period=period,
            label="GPU fleet wanted but none ready",
        )
        return starved.create_alarm(
            self,
            "NoHealthyHosts",
            alarm_description=(
                "The GPU fleet should run but no instance has passed /ready for 20 minutes (no spot "
                "capacity for any allowed type, a bad AMI, or vLLM failing to start): questions are "
                "answered upstream_unavailable."
            ),
            threshold=1,
            evaluation_periods=4,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _balancer_alarms(self, network: NetworkStack) -> list[cloudwatch.Alarm]:
        period = Duration.minutes(5)
        alb = network.alb
        errors = cloudwatch.MathExpression(
            expression="elb + target",
            using_metrics={
                "elb": alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=period),
                "target": alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=period),
            },
            period=period,
            label="AgentCore 5xx",
        )
        five_xx = errors.create_alarm(
            self,
            "AgentCore5xx",
            alarm_description=(
                "AgentCore's balancer or AgentCore itself answered 5xx: the Lambdas could not hand over "
                "queries or lectures (no healthy instance, or AgentCore failing)."
            ),
            threshold=5,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        unhealthy = _target_group_metric(network, "UnHealthyHostCount", Duration.minutes(1)).create_alarm(
            self,
            "UnhealthyHosts",
            alarm_description=(
                "A GPU instance failed AgentCore's /ready check for 5 minutes (vLLM or TTS down); Auto "
                "Scaling replaces it after the health-check grace period."
            ),
            threshold=1,
            evaluation_periods=5,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return [five_xx, unhealthy]


#: The SSM agent's part of Session Manager and Run Command ("Create a custom IAM role for Session
#: Manager", AWS Systems Manager User Guide; the testinfra backend, tests/host/ssm_backend.py, runs
#: Run Command): the session channels and the agent's message polling. None of these actions has a
#: resource type (Service Authorization Reference: Amazon Message Gateway Service, Amazon Session
#: Manager Message Gateway Service).
SESSION_CHANNEL_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
AGENT_MESSAGE_ACTIONS = (
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)
#: The project's SSM parameters (the AMI's, each environment's intake switch): the only ones a
#: host may read, where AmazonSSMManagedInstanceCore allowed every parameter of the account.
PARAMETER_PREFIX = "/synapscribe/"


def session_manager_statements(scope: Construct) -> list[iam.PolicyStatement]:
    """Session Manager's minimal set for the GPU hosts, instead of AmazonSSMManagedInstanceCore."""
    stack = Stack.of(scope)
    return [
        iam.PolicyStatement(actions=list(SESSION_CHANNEL_ACTIONS), resources=["*"]),
        iam.PolicyStatement(actions=list(AGENT_MESSAGE_ACTIONS), resources=["*"]),
        # The agent reports its own instance (UpdateInstanceInformation's resource type: instance).
        iam.PolicyStatement(
            actions=["ssm:UpdateInstanceInformation"],
            resources=[stack.format_arn(service="ec2", resource="instance", resource_name="*")],
        ),
        iam.PolicyStatement(
            actions=["ssm:GetParameter", "ssm:GetParameters"],
            resources=[
                stack.format_arn(
                    service="ssm", resource="parameter", resource_name=PARAMETER_PREFIX.strip("/") + "/*"
                )
            ],
        ),
    ]


def _target_group_metric(network: NetworkStack, name: str, period: Duration) -> cloudwatch.Metric:
    """A host-count metric of AgentCore's target group (maximum over `period`). Built from the
    balancer's and target group's own full-name attributes: CDK's `target_group.metrics` derive the
    balancer's name by splitting the listener ARN, and across stacks that puts Fn::GetStackOutput
    inside Fn::Split, which CloudFormation does not accept (cfn-lint E1022)."""
    return cloudwatch.Metric(
        namespace="AWS/ApplicationELB",
        metric_name=name,
        dimensions_map={
            "LoadBalancer": network.alb.load_balancer_full_name,
            "TargetGroup": network.target_group.target_group_full_name,
        },
        statistic="Maximum",
        period=period,
    )
