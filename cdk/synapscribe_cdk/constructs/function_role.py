"""Execution roles of the platform's own Lambdas: logs to their own log group only."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from synapscribe_cdk.nag import acknowledge, managed_policy_findings

#: What the Lambda service does with a function's logs once the log group exists.
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


def function_role(
    scope: Construct, construct_id: str, *, log_group: logs.ILogGroup, in_vpc: bool = False
) -> iam.Role:
    """A role that may write to `log_group` alone (instead of AWSLambdaBasicExecutionRole, which
    allows every log group of the account) and, in a VPC, manage the function's network
    interfaces."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        inline_policies={
            "Logs": iam.PolicyDocument(
                statements=[
                    # The group's ARN ends in ":*", which covers its log streams.
                    iam.PolicyStatement(actions=list(LOG_ACTIONS), resources=[log_group.log_group_arn])
                ]
            )
        },
    )
    if in_vpc:
        role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(VPC_ACCESS_POLICY))
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AWSLambdaVPCAccessExecutionRole: the network-interface calls every VPC Lambda needs "
            "(they have no resource-level permissions), maintained by AWS.",
            managed_policy_findings(VPC_ACCESS_POLICY),
        )
    return role
