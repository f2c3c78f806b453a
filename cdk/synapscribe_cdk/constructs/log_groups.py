"""CloudWatch log groups with a retention taken from configuration (any valid number of days),
encrypted with their stack's customer managed key."""

from __future__ import annotations

from aws_cdk import Aws, CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

#: The construct id of each stack's key for its log groups.
LOGS_KEY_ID = "LogsKey"


def retained_log_group(scope: Construct, construct_id: str, days: int) -> logs.LogGroup:
    """A log group kept `days` days (config.LOG_RETENTION_DAYS validated the number), encrypted
    with the stack's logs key: the account can audit and revoke access to what its functions and
    services log (lecture and connection ids, error details), which the service's own key does not
    allow."""
    group = logs.LogGroup(
        scope, construct_id, encryption_key=logs_key(scope), removal_policy=RemovalPolicy.DESTROY
    )
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = days
    return group


def logs_key(scope: Construct) -> kms.Key:
    """The key of `scope`'s stack for its log groups: one per stack, so no stack depends on
    another's key, deleted with the stack's log groups."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(LOGS_KEY_ID)
    if isinstance(existing, kms.Key):
        return existing
    key = kms.Key(
        stack,
        LOGS_KEY_ID,
        description=f"{stack.stack_name}: encrypts the stack's CloudWatch log groups",
        enable_key_rotation=True,
        pending_window=Duration.days(7),
        removal_policy=RemovalPolicy.DESTROY,
    )
    # The statement the CloudWatch Logs User Guide gives ("Encrypt log data in CloudWatch Logs
    # using AWS KMS"): the regional logs service, only for this account's log groups in this region.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{Aws.PARTITION}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )
    return key


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
        assert isinstance(owner, Construct)
        group = retained_log_group(owner, f"{node.node.id}Logs", days)
        cfn_group = group.node.default_child
        assert isinstance(cfn_group, CfnResource)
        node.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
        node.add_resource_dependency(cfn_group)
        made.append(group)
    return made
