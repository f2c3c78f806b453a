"""The SNS topic every alarm of the platform notifies (encrypted, TLS only)."""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key: it needs a key whose
        # policy lets the CloudWatch service use it.
        self.key = kms.Key(
            self,
            "Key",
            description="SynapScribe alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        stack = Stack.of(self)
        # Only this account's alarms (a confused deputy in another account cannot use the key).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name="SynapScribe alarms", master_key=self.key, enforce_ssl=True
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self._action = cw_actions.SnsAction(self.topic)

    def notify(self, alarms: list[cloudwatch.Alarm]) -> None:
        for alarm in alarms:
            alarm.add_alarm_action(self._action)
            alarm.add_ok_action(self._action)
