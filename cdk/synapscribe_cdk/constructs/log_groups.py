"""CloudWatch log groups with a retention taken from configuration (any valid number of days)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct


def retained_log_group(scope: Construct, construct_id: str, days: int) -> logs.LogGroup:
    """A log group kept `days` days (config.LOG_RETENTION_DAYS validated the number)."""
    group = logs.LogGroup(scope, construct_id, removal_policy=RemovalPolicy.DESTROY)
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = days
    return group
