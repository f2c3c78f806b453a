"""CloudWatch log groups with a retention taken from configuration (any valid number of days)."""

from __future__ import annotations

from aws_cdk import CfnResource, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct


def retained_log_group(scope: Construct, construct_id: str, days: int) -> logs.LogGroup:
    """A log group kept `days` days (config.LOG_RETENTION_DAYS validated the number)."""
    group = logs.LogGroup(scope, construct_id, removal_policy=RemovalPolicy.DESTROY)
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = days
    return group


def retain_helper_function_logs(stack: Stack, days: int) -> list[logs.LogGroup]:
    """Give CDK's own helper functions in `stack` (custom-resource providers such as the bucket
    notifications, auto-delete-objects and default-security-group handlers) a log group kept
    `days` days. Left alone, Lambda creates `/aws/lambda/<name>` on first use with no retention,
    and it stays forever. The function logs to the new group (LoggingConfig) and is created after
    it, so Lambda never makes the group itself. Call it once every construct of the stack exists."""
    made = []
    for node in stack.node.find_all():
        if not isinstance(node, CfnResource) or node.cfn_resource_type != "AWS::Lambda::Function":
            continue
        if isinstance(node, lambda_.CfnFunction) and node.logging_config is not None:
            continue  # the platform's own functions name their log group
        owner = node.node.scope
        assert owner is not None
        group = retained_log_group(owner, f"{node.node.id}Logs", days)
        cfn_group = group.node.default_child
        assert isinstance(cfn_group, CfnResource)
        node.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
        node.add_resource_dependency(cfn_group)
        made.append(group)
    return made
