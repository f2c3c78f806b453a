"""An encrypted SQS queue that keeps the events a Lambda gave up on, with an alarm on its depth."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from synapscribe_cdk.nag import acknowledge, acknowledge_checkov

#: SQS keeps a message at most 14 days: time enough to read why a lecture was never validated.
RETENTION = Duration.days(14)


class FailureQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, what: str) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
        )
        acknowledge(
            self.queue,
            "AwsSolutions-SQS3",
            "This queue is itself the on-failure destination (a dead-letter store); nothing consumes "
            "it automatically, an operator reads it when its alarm fires.",
        )
        acknowledge_checkov(
            self.queue,
            "CKV_AWS_27",
            "Encrypted at rest with SQS-managed keys (SSE-SQS); a KMS key would add key permissions to "
            "Lambda's on-failure delivery to protect only the failed events' bucket and key names.",
        )
        self.alarm = self.queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5), statistic="Maximum"
        ).create_alarm(
            self,
            "Depth",
            alarm_description=(
                f"{what} gave up on an event (its retries or its maximum event age ran out): the event "
                "is in this queue. Read it, fix the cause, and replay or discard it."
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
