"""The image pipeline's build role: RunInstances only of the fleet's first instance type and only
with the project's tag, SSM parameters only the environments' channels, Run Command only on
instances tagged as verify instances, instance refreshes only of the environments' fleets."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from synapscribe import image_names as tags
from synapscribe.image_names import STACK_PREFIX
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.config import EnvironmentConfig


def arn(service: str, resource: str, region: bool = True, account: bool = True) -> str:
    """An ARN in this stack's partition (and region and account, unless not)."""
    return (
        f"arn:{Aws.PARTITION}:{service}:{Aws.REGION if region else ''}:"
        f"{Aws.ACCOUNT_ID if account else ''}:{resource}"
    )


def build_statements(
    environments: list[EnvironmentConfig], platform: PlatformConfig, instance_type: str, verify_role_arn: str
) -> list[iam.PolicyStatement]:
    """What the build's role may do: what the steps of `synapscribe ami` do, and no more."""
    project_tag = {f"aws:ResourceTag/{tags.PROJECT_KEY}": tags.PROJECT_VALUE}
    channels = [platform.ami.channel(e.name) for e in environments]
    return [
        iam.PolicyStatement(actions=["ec2:Describe*"], resources=["*"]),
        # Packer's build instance and the verify instance: the one type, tagged as the project's.
        iam.PolicyStatement(
            actions=["ec2:RunInstances"],
            resources=[arn("ec2", "instance/*")],
            conditions={
                "StringEquals": {
                    "ec2:InstanceType": instance_type,
                    f"aws:RequestTag/{tags.PROJECT_KEY}": tags.PROJECT_VALUE,
                }
            },
        ),
        iam.PolicyStatement(
            actions=["ec2:RunInstances"],
            resources=[
                arn("ec2", f"{kind}/*")
                for kind in (
                    "volume",
                    "network-interface",
                    "security-group",
                    "subnet",
                    "key-pair",
                    "spot-instances-request",
                )
            ]
            + [arn("ec2", "image/*", account=False)],
        ),
        iam.PolicyStatement(
            actions=["ec2:TerminateInstances", "ec2:StopInstances", "ec2:CreateImage"],
            resources=[arn("ec2", "instance/*")],
            conditions={"StringEquals": project_tag},
        ),
        # Packer's temporary key pair and security group; images and snapshots (its encrypted
        # copy's intermediate image carries no tag yet when Packer deregisters it).
        iam.PolicyStatement(
            actions=[
                "ec2:CreateKeyPair",
                "ec2:DeleteKeyPair",
                "ec2:CreateSecurityGroup",
                "ec2:DeleteSecurityGroup",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateImage",
                "ec2:CopyImage",
                "ec2:RegisterImage",
                "ec2:CreateSnapshot",
                "ec2:DeregisterImage",
                "ec2:DeleteSnapshot",
                "ec2:CreateTags",
            ],
            resources=[
                arn("ec2", "key-pair/*"),
                arn("ec2", "security-group/*"),
                arn("ec2", "vpc/*"),
                arn("ec2", "image/*", account=False),
                arn("ec2", "snapshot/*", account=False),
                arn("ec2", "volume/*"),
                arn("ec2", "instance/*"),
            ],
        ),
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[verify_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            actions=["ssm:GetParameter", "ssm:PutParameter"],
            resources=[arn("ssm", "parameter" + name) for c in channels for name in (c.current, c.previous)],
        ),
        iam.PolicyStatement(
            actions=["ssm:SendCommand"],
            resources=[arn("ssm", "document/AWS-RunShellScript", account=False)],
        ),
        iam.PolicyStatement(
            actions=["ssm:SendCommand"],
            resources=[arn("ec2", "instance/*")],
            conditions={"StringEquals": {f"ssm:resourceTag/{tags.PURPOSE}": tags.VERIFY_PURPOSE}},
        ),
        iam.PolicyStatement(actions=["ssm:GetCommandInvocation"], resources=["*"]),
        iam.PolicyStatement(
            actions=["autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh"],
            resources=[
                arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{e.fleet_group_name}")
                for e in environments
            ],
        ),
        iam.PolicyStatement(
            actions=["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            actions=["cloudformation:DescribeStacks"],
            resources=[
                arn("cloudformation", f"stack/{STACK_PREFIX.format(env=e.name)}*/*") for e in environments
            ],
        ),
    ]
