"""What the month may cost, and who hears when it runs over: an AWS Budget per environment whose
100 % notification closes intake and the GPU fleet, a cost anomaly monitor, and a bucket-size alarm.

- The budget (`AWS::Budgets::Budget`, monthly, cost, `monthly_budget_usd` in cdk.json) counts the
  costs tagged `environment=<name>` (every stack of the environment carries the tag; the tag must
  be activated as a cost allocation tag, see the operator's guide). At 80 % of the forecast it
  notifies the alarm topic; at 100 % of the actual cost it notifies its own action topic.
- The action topic's only subscriber is the budget-stop function (lambdas/budget_stop): Budgets'
  native actions cannot set an Auto Scaling group's maximum, so the function closes the intake
  switch, sets the GPU group to 0 and suspends its schedule, then tells the alarm topic.
- A cost anomaly monitor on the same tag mails the alarm address (daily) when Cost Explorer sees
  an anomaly worth a day of the budget.
- Bucket size: S3's daily storage metric against `cost_alarms.bucket_gib`.

Both topics are encrypted with the alarm key; their policies admit budgets.amazonaws.com only for
this account's budgets (`aws:SourceAccount`, `aws:SourceArn`).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_ce as ce
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from synapscribe.edge import intake

from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs.alarm_topic import AlarmTopic
from synapscribe_cdk.constructs.edge_function import RUNTIME, acknowledge_lambda_findings
from synapscribe_cdk.constructs.function_role import function_role
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import acknowledge, acknowledge_checkov, wildcard_findings

BUDGET_STOP_CODE = Path(__file__).resolve().parents[1] / "lambdas" / "budget_stop"
#: The tag every stack of an environment carries (application.py), by which the budget and the
#: anomaly monitor count its costs.
ENVIRONMENT_TAG = "environment"
#: The budget's notifications: a warning on the month's forecast, the action on its actual cost.
FORECAST_WARNING_PERCENT = 80
ACTION_PERCENT = 100
#: An anomaly worth a mail costs at least a day of the month's budget.
ANOMALY_DAYS = 30
GIB = 1024**3


def budgets_principal_conditions(stack: Stack) -> dict[str, dict[str, str]]:
    """Budgets publishes for this account's budgets only (AWS Budgets User Guide, "Creating an
    Amazon SNS topic for budget notifications": aws:SourceAccount and aws:SourceArn)."""
    return {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:budgets::{stack.account}:*"},
    }


def intake_parameter_arn(stack: Stack, environment: str) -> str:
    """The edge's intake switch (synapscribe.edge.intake, created by the Api stack), by name."""
    return stack.format_arn(
        service="ssm", resource="parameter", resource_name=intake.parameter_name(environment).lstrip("/")
    )


def group_arn(stack: Stack, group_name: str) -> str:
    """An Auto Scaling group's ARN holds a UUID made at its creation; its name is fixed."""
    return stack.format_arn(
        service="autoscaling",
        resource="autoScalingGroup",
        resource_name=f"*:autoScalingGroupName/{group_name}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


class CostGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        alarm_topic: AlarmTopic,
        bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.action_topic = sns.Topic(
            self,
            "ActionTopic",
            display_name=f"SynapScribe {config.name} budget action",
            master_key=alarm_topic.key,
            enforce_ssl=True,
        )
        for topic in (alarm_topic.topic, self.action_topic):
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions=budgets_principal_conditions(stack),
                )
            )
        alarm_topic.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions=budgets_principal_conditions(stack),
            )
        )
        self.function = self._stop_function(config, alarm_topic)
        self.action_topic.add_subscription(subscriptions.LambdaSubscription(self.function))
        self.budget = self._budget(config, alarm_topic.topic)
        self.anomaly_monitor = ce.CfnAnomalyMonitor(
            self,
            "AnomalyMonitor",
            monitor_name=f"SynapScribe-{config.name}",
            monitor_type="CUSTOM",
            monitor_specification=json.dumps(
                {"Tags": {"Key": ENVIRONMENT_TAG, "Values": [config.name], "MatchOptions": ["EQUALS"]}}
            ),
        )
        self.anomaly_subscription: ce.CfnAnomalySubscription | None = None
        if config.alarm_email:
            self.anomaly_subscription = ce.CfnAnomalySubscription(
                self,
                "AnomalySubscription",
                subscription_name=f"SynapScribe-{config.name}",
                monitor_arn_list=[self.anomaly_monitor.attr_monitor_arn],
                frequency="DAILY",
                subscribers=[
                    ce.CfnAnomalySubscription.SubscriberProperty(type="EMAIL", address=config.alarm_email)
                ],
                threshold_expression=json.dumps(
                    {
                        "Dimensions": {
                            "Key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
                            "MatchOptions": ["GREATER_THAN_OR_EQUAL"],
                            "Values": [f"{config.monthly_budget_usd / ANOMALY_DAYS:g}"],
                        }
                    }
                ),
            )
        self.bucket_size_alarm = cloudwatch.Metric(
            namespace="AWS/S3",
            metric_name="BucketSizeBytes",
            dimensions_map={"BucketName": bucket.bucket_name, "StorageType": "StandardStorage"},
            statistic="Maximum",
            period=Duration.days(1),
        ).create_alarm(
            self,
            "BucketSize",
            alarm_description=(
                f"The lecture bucket holds more than {config.cost_alarms.bucket_gib} GiB (S3's daily "
                "storage metric): more than the environment's uploads should keep. Look for one owner or "
                "address uploading in a loop (the access logs), and close uploads if needed."
            ),
            threshold=config.cost_alarms.bucket_gib * GIB,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.stop_errors_alarm = self.function.metric_errors(period=Duration.minutes(5)).create_alarm(
            self,
            "BudgetActionErrors",
            alarm_description=(
                "The budget action failed: the month's budget is spent but intake or the GPU fleet may "
                "still be open. Close them by hand (operator's guide, 'Cost ceilings and alarms')."
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = [self.bucket_size_alarm, self.stop_errors_alarm]

    def _budget(self, config: EnvironmentConfig, alarm_topic: sns.ITopic) -> budgets.CfnBudget:
        def notify(
            kind: str, percent: int, topic: sns.ITopic
        ) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
            return budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=percent,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=[
                    budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)
                ],
            )

        return budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"SynapScribe-{config.name}",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=config.monthly_budget_usd, unit="USD"),
                cost_filters={"TagKeyValue": [f"user:{ENVIRONMENT_TAG}${config.name}"]},
            ),
            notifications_with_subscribers=[
                notify("FORECASTED", FORECAST_WARNING_PERCENT, alarm_topic),
                notify("ACTUAL", ACTION_PERCENT, self.action_topic),
            ],
        )

    def _stop_function(self, config: EnvironmentConfig, alarm_topic: AlarmTopic) -> lambda_.Function:
        stack = Stack.of(self)
        log_group = retained_log_group(self, "Logs", config.log_retention_days)
        function = lambda_.Function(
            self,
            "StopFunction",
            runtime=RUNTIME,
            code=lambda_.Code.from_asset(str(BUDGET_STOP_CODE)),
            handler="budget_stop.handler",
            description=f"SynapScribe {config.name}: budget reached, close intake and the GPU fleet",
            timeout=Duration.seconds(60),
            memory_size=128,
            environment={
                "INTAKE_PARAMETER": intake.parameter_name(config.name),
                "AUTO_SCALING_GROUP_NAME": config.fleet_group_name,
                "ALARM_TOPIC_ARN": alarm_topic.topic.topic_arn,
                "ENVIRONMENT": config.name,
            },
            log_group=log_group,
            role=function_role(self, "Role", log_group=log_group),
        )
        statements = [
            iam.PolicyStatement(
                actions=["ssm:PutParameter"], resources=[intake_parameter_arn(stack, config.name)]
            ),
            iam.PolicyStatement(
                actions=["autoscaling:SuspendProcesses", "autoscaling:UpdateAutoScalingGroup"],
                resources=[group_arn(stack, config.fleet_group_name)],
            ),
            iam.PolicyStatement(actions=["sns:Publish"], resources=[alarm_topic.topic.topic_arn]),
            # Publishing to a topic encrypted with a customer managed key (SNS Developer Guide).
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=[alarm_topic.key.key_arn]
            ),
        ]
        for statement in statements:
            function.add_to_role_policy(statement)
        role = function.role
        assert role is not None
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The GPU group's ARN holds a UUID made at its creation, so it is matched by its fixed name; "
            "GenerateDataKey* names the two data-key calls SNS makes with the alarm key, on that key only.",
            [
                *wildcard_findings(self, [r for s in statements for r in s.resources]),
                "Action::kms:GenerateDataKey*",
            ],
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Same pinned Python 3.12 runtime as the platform's other functions (boto3 only).",
        )
        acknowledge_lambda_findings(function)
        acknowledge_checkov(
            function,
            "CKV_AWS_115",
            "It runs once when the month's budget is reached (one notification per threshold and "
            "month); reserving concurrency for it would take it from the account's pool all year.",
        )
        acknowledge_checkov(
            function,
            "CKV_AWS_116",
            "SNS invokes it asynchronously and Lambda retries twice; a run that still fails raises the "
            "BudgetActionErrors alarm on the alarm topic, whose readers close intake by hand (the "
            "guide); a queued copy of the notification would close nothing by itself.",
        )
        acknowledge_checkov(
            function,
            "CKV_AWS_117",
            "It calls only AWS APIs (SSM, Auto Scaling, SNS); outside the VPC it needs no NAT, so the "
            "budget's action works even when the environment's egress does not.",
        )
        return function
