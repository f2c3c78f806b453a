"""Account: what API Gateway keeps once per account and region, outside every environment.

API Gateway writes access logs only with an account-level CloudWatch role
(`AWS::ApiGateway::Account`, one per account and region). In each environment's stack, deleting
dev would remove the role prod's stage logs with, and two stacks would fight over one setting;
here it belongs to one stack that dev and prod both depend on (`SynapScribe-Account`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_iam as iam
from constructs import Construct

from synapscribe_cdk.nag import acknowledge, managed_policy_findings

STACK_NAME = "SynapScribe-Account"
PUSH_TO_LOGS = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


class AccountStack(Stack):
    def __init__(self, scope: Construct, construct_id: str = STACK_NAME, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        role = iam.Role(
            self,
            "ApiGatewayLogging",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(PUSH_TO_LOGS)],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-documented policy for API Gateway logging.",
            managed_policy_findings(PUSH_TO_LOGS),
        )
        self.api_gateway_account = apigw_v1.CfnAccount(
            self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn
        )
