"""The DynamoDB tables of synapscribe.store: connections, lectures, sessions."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from synapscribe.host_registry import ALL_TABLE_KEYS
from synapscribe.store import SWEEP_ATTRIBUTE, SWEEP_INDEX, SWEEP_INDEXES, TTL_ATTRIBUTE

from synapscribe_cdk.nag import acknowledge_checkov


class StateTables(Construct):
    """One on-demand, PITR-protected table per entry of `TABLE_KEYS`, each with the TTL attribute.

    `tables` is keyed like TABLE_KEYS (`connections_table`, …), which are also the
    `AwsResources` field names, so the env variables are `SYNAPSCRIBE_<KEY>`. The tables of
    store.SWEEP_INDEXES get the sweeper's sparse index (provision.py makes the same locally).
    """

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {}
        self.throttle_alarms: dict[str, cloudwatch.Alarm] = {}
        # The host registry (host_registry.py) too: its items expire with their heartbeat's TTL.
        for field, key in ALL_TABLE_KEYS.items():
            label = field.removesuffix("_table").capitalize()
            table = dynamodb.Table(
                self,
                label,
                partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                time_to_live_attribute=TTL_ATTRIBUTE,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                deletion_protection=removal_policy == RemovalPolicy.RETAIN,
                removal_policy=removal_policy,
            )
            self.tables[field] = table
            self._add_sweep_index(field, table)
            acknowledge_checkov(
                table,
                "CKV_AWS_119",
                "Encrypted with the AWS managed key (aws/dynamodb), whose use CloudTrail records; a "
                "customer managed key would add a key to administer and per-request KMS cost, and no "
                "reader of these tables needs access revoked apart from its IAM role.",
            )
            period = Duration.minutes(5)
            throttles = cloudwatch.MathExpression(
                expression="r + w",
                using_metrics={
                    "r": table.metric("ReadThrottleEvents", statistic="Sum", period=period),
                    "w": table.metric("WriteThrottleEvents", statistic="Sum", period=period),
                },
                period=period,
                label=f"{label} throttled requests",
            )
            self.throttle_alarms[field] = throttles.create_alarm(
                self,
                f"{label}Throttles",
                alarm_description=(
                    f"The {label.lower()} table throttled reads or writes: on-demand capacity hit a "
                    "partition or account limit, so client requests fail or slow down."
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

    @staticmethod
    def _add_sweep_index(field: str, table: dynamodb.Table) -> None:
        for index in SWEEP_INDEXES:
            if index.table != field:
                continue
            table.add_global_secondary_index(
                index_name=SWEEP_INDEX,
                partition_key=dynamodb.Attribute(name=SWEEP_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
                projection_type=(
                    dynamodb.ProjectionType.ALL
                    if index.projection is None
                    else dynamodb.ProjectionType.INCLUDE
                ),
                non_key_attributes=list(index.projection) if index.projection is not None else None,
            )
