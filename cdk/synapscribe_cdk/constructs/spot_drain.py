"""Termination lifecycle hook + EventBridge rules + the drain Lambda (see lambdas/drain)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from synapscribe_cdk.constructs.edge_function import RUNTIME, acknowledge_lambda_findings
from synapscribe_cdk.constructs.function_role import function_role
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import acknowledge, acknowledge_checkov, wildcard_findings

DRAIN_CODE = Path(__file__).resolve().parents[1] / "lambdas" / "drain"
#: Time the drain function needs besides the drain itself (API calls, cold start).
DRAIN_OVERHEAD = 60
#: The only EC2 notice that drains: the instance is going away in 2 minutes. A rebalance
#: recommendation does not: with capacity rebalancing Auto Scaling first launches a replacement
#: and terminates the old instance only once the new one is InService, through the termination
#: lifecycle hook, which drains it then.
SPOT_INTERRUPTION = "EC2 Spot Instance Interruption Warning"
TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"


class SpotDrain(Construct):
    """Spot interruption warning: stop routing to the instance at once. Termination (for any
    reason, including capacity rebalancing): stop routing to it, hold it in Terminating:Wait for
    `drain_seconds`, then let it go."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group: autoscaling.AutoScalingGroup,
        target_group_arn: str,
        target_port: int,
        drain_seconds: int,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.hook = group.add_lifecycle_hook(
            "DrainBeforeTermination",
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            # If the drain function fails, termination still proceeds once the drain time is over.
            heartbeat_timeout=Duration.seconds(drain_seconds + DRAIN_OVERHEAD),
            default_result=autoscaling.DefaultResult.CONTINUE,
        )
        log_group = retained_log_group(self, "Logs", log_retention_days)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            code=lambda_.Code.from_asset(str(DRAIN_CODE)),
            handler="drain_instance.handler",
            description="SynapScribe: drain a GPU instance before it terminates",
            timeout=Duration.seconds(min(900, drain_seconds + DRAIN_OVERHEAD)),
            memory_size=128,
            environment={
                "TARGET_GROUP_ARN": target_group_arn,
                "AUTO_SCALING_GROUP_NAME": group.auto_scaling_group_name,
                "DRAIN_SECONDS": str(drain_seconds),
                "TARGET_PORT": str(target_port),
            },
            log_group=log_group,
            role=function_role(self, "Role", log_group=log_group),
        )
        self._acknowledge_findings()
        group_arn = (
            f"arn:{Aws.PARTITION}:autoscaling:{Aws.REGION}:{Aws.ACCOUNT_ID}:autoScalingGroup:*:"
            f"autoScalingGroupName/{group.auto_scaling_group_name}"
        )
        statements = [
            iam.PolicyStatement(
                actions=["elasticloadbalancing:DeregisterTargets"], resources=[target_group_arn]
            ),
            iam.PolicyStatement(actions=["autoscaling:CompleteLifecycleAction"], resources=[group_arn]),
            # Describe calls have no resource-level permissions.
            iam.PolicyStatement(actions=["autoscaling:DescribeAutoScalingInstances"], resources=["*"]),
        ]
        for statement in statements:
            self.function.add_to_role_policy(statement)
        role = self.function.role
        assert role is not None
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "DescribeAutoScalingInstances has no resource-level permissions, and a group ARN embeds a "
            "generated id, so it is matched by the group's name.",
            wildcard_findings(self, [r for s in statements for r in s.resources]),
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Same pinned Python 3.12 runtime as the platform's other functions (boto3 only).",
        )

        target = targets.LambdaFunction(self.function, retry_attempts=2)
        self.lifecycle_rule = events.Rule(
            self,
            "TerminateLifecycleAction",
            description="SynapScribe GPU instance is terminating: drain it, then continue",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"],
                detail_type=[TERMINATE_ACTION],
                detail={"AutoScalingGroupName": [group.auto_scaling_group_name]},
            ),
            targets=[target],
        )
        self.notice_rule = events.Rule(
            self,
            "SpotNotices",
            description="Spot interruption warning (2 minutes): stop routing to the instance",
            event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=[SPOT_INTERRUPTION]),
            targets=[target],
        )
        self.errors_alarm = self.function.metric_errors(period=Duration.minutes(5)).create_alarm(
            self,
            "Errors",
            alarm_description=(
                "The drain function failed: a terminating GPU instance may have been cut off with "
                "answers in flight (termination continued after the hook's timeout)."
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _acknowledge_findings(self) -> None:
        acknowledge_lambda_findings(self.function)
        acknowledge_checkov(
            self.function,
            "CKV_AWS_115",
            "One invocation per terminating instance of the fleet (at most capacity.max) or spot "
            "interruption warning in the account and region (EventBridge cannot filter the warning by "
            "group), so spot instances interrupted at once bound its concurrency; reserving some "
            "would take it from the account's unreserved pool all year.",
        )
        acknowledge_checkov(
            self.function,
            "CKV_AWS_116",
            "A drain is useful only within the instance's last minutes: EventBridge retries twice, then "
            "the lifecycle hook lets termination continue and the errors alarm fires; a queued event "
            "could only be replayed after the instance is gone.",
        )
        acknowledge_checkov(
            self.function,
            "CKV_AWS_117",
            "It calls only AWS APIs (Elastic Load Balancing, Auto Scaling); outside the VPC it needs "
            "neither the NAT instance nor interface endpoints, so it drains even while the NAT is "
            "being replaced.",
        )
