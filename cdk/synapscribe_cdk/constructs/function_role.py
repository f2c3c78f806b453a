"""Execution roles of the platform's own Lambdas: logs to their own log group only, and, for a
function in the VPC, its network interfaces in its own subnets and security group only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from synapscribe_cdk.nag import acknowledge

#: What the Lambda service does with a function's logs once the log group exists.
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
#: What the Lambda service does, with the function's role, to attach the function to its subnets
#: (the network-interface actions of AWS's AWSLambdaVPCAccessExecutionRole, without its logs on *).
INTERFACE_ACTIONS = (
    "ec2:AssignPrivateIpAddresses",
    "ec2:DeleteNetworkInterface",
    "ec2:UnassignPrivateIpAddresses",
)
#: EC2 Describe* actions support no resource-level permissions (Service Authorization Reference,
#: "Actions defined by Amazon EC2": no resource type for DescribeNetworkInterfaces or
#: DescribeSubnets), so they can only be granted on "*".
DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")


@dataclass(frozen=True)
class VpcPlacement:
    """Where a function's network interfaces go: subnet ids and its security group's id."""

    subnet_ids: Sequence[str]
    security_group_id: str


def ec2_arn(resource: str) -> str:
    return f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def interface_statements(placement: VpcPlacement) -> list[iam.PolicyStatement]:
    """Network interfaces in `placement`'s subnets with its security group, and nothing else.

    CreateNetworkInterface names three resources: the subnet, the security group (each granted by
    ARN) and the new interface, whose id does not exist yet (network-interface/*, limited by the
    `ec2:Subnet` condition to the function's subnets). The same condition limits deleting and
    re-addressing interfaces to those in its subnets."""
    subnets = [ec2_arn(f"subnet/{s}") for s in placement.subnet_ids]
    interfaces = ec2_arn("network-interface/*")
    in_our_subnets = {"ArnEquals": {"ec2:Subnet": subnets}}
    return [
        iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface"],
            resources=[*subnets, ec2_arn(f"security-group/{placement.security_group_id}")],
        ),
        iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface", *INTERFACE_ACTIONS],
            resources=[interfaces],
            conditions=in_our_subnets,
        ),
        iam.PolicyStatement(actions=list(DESCRIBE_ACTIONS), resources=["*"]),
    ]


def function_role(
    scope: Construct, construct_id: str, *, log_group: logs.ILogGroup, vpc: VpcPlacement | None = None
) -> iam.Role:
    """A role that may write to `log_group` alone (instead of AWSLambdaBasicExecutionRole, which
    allows every log group of the account) and, in a VPC, manage the function's network
    interfaces in its own subnets (instead of AWSLambdaVPCAccessExecutionRole, which allows them
    on every subnet, and logs on every group)."""
    documents = {
        "Logs": iam.PolicyDocument(
            statements=[
                # The group's ARN ends in ":*", which covers its log streams.
                iam.PolicyStatement(actions=list(LOG_ACTIONS), resources=[log_group.log_group_arn])
            ]
        )
    }
    if vpc is not None:
        documents["NetworkInterfaces"] = iam.PolicyDocument(statements=interface_statements(vpc))
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        inline_policies=documents,
    )
    if vpc is not None:
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "DescribeNetworkInterfaces and DescribeSubnets support no resource-level permissions "
            "(Service Authorization Reference, Amazon EC2), so they are on *; a new network "
            "interface's id is made when Lambda creates it, so network-interface/* is limited by the "
            "ec2:Subnet condition to this function's subnets.",
            [
                "Resource::*",
                "Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*",
            ],
        )
    return role
