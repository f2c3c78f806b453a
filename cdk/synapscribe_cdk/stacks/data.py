"""Data: the S3 bucket and the DynamoDB tables (everything that holds state)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs.alarm_topic import AlarmTopic
from synapscribe_cdk.constructs.cost_guard import CostGuard
from synapscribe_cdk.constructs.lecture_bucket import LectureBucket
from synapscribe_cdk.constructs.state_tables import StateTables

BUCKET_ARN_OUTPUT = "BucketArn"


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        platform: PlatformConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.removal == "retain" else RemovalPolicy.DESTROY
        storage = LectureBucket(
            self,
            "Storage",
            platform=platform,
            cors_allowed_origins=config.cors_allowed_origins,
            removal_policy=removal,
            log_retention_days=config.log_retention_days,
        )
        self.bucket: s3.Bucket = storage.bucket
        state = StateTables(self, "State", removal_policy=removal)
        self.tables: dict[str, dynamodb.Table] = state.tables
        self.alarms = list(state.throttle_alarms.values())
        # One topic for every alarm of the environment (the other stacks add theirs to it).
        self.alarm_topic = AlarmTopic(self, "Alarms", email=config.alarm_email)
        self.cost_guard = CostGuard(
            self, "CostGuard", config=config, alarm_topic=self.alarm_topic, bucket=self.bucket
        )
        self.alarms += self.cost_guard.alarms
        self.alarm_topic.notify(self.alarms)
        CfnOutput(
            self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn, description="alarm notifications"
        )

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name, description="SYNAPSCRIBE_BUCKET")
        # Read by name (Fn::GetStackOutput), never exported: an export would block every update
        # that replaces the bucket. IAM statements elsewhere build object ARNs from it, and their
        # wildcard findings must read the same before and after synthesis (see nag.py).
        CfnOutput(self, BUCKET_ARN_OUTPUT, value=self.bucket.bucket_arn)
        for field, table in self.tables.items():
            CfnOutput(
                self,
                "".join(part.capitalize() for part in field.split("_")) + "Name",
                value=table.table_name,
                description=f"SYNAPSCRIBE_{field.upper()}",
            )

    def imported_bucket_arn(self, consumer: Stack) -> str:
        """The bucket's ARN in another stack: this stack's output, read at deploy time (a weak
        reference, no export), and a stack dependency."""
        consumer.add_stack_dependency(self)
        return Fn.get_stack_output(self.stack_name, BUCKET_ARN_OUTPUT)

    def resource_environment(self) -> dict[str, str]:
        """The `SYNAPSCRIBE_*` variables (AwsResources) every service needs."""
        env = {"SYNAPSCRIBE_BUCKET": self.bucket.bucket_name}
        env.update({f"SYNAPSCRIBE_{field.upper()}": t.table_name for field, t in self.tables.items()})
        return env
