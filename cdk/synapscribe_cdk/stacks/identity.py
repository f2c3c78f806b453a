"""Identity: the Cognito identity pool whose guest (unauthenticated) identities may only open a
WebSocket connection. Everything else a client does goes through that connection, which the
handler scopes to the identity that opened it.

Guests use the basic (classic) flow: GetId, GetOpenIdToken, then STS AssumeRoleWithWebIdentity
with the guest role. The enhanced flow (GetCredentialsForIdentity) scopes unauthenticated
credentials down with Cognito's managed session policy AmazonCognitoUnAuthedIdentitiesSessionPolicy,
whose action list has no `execute-api`, so a guest's signed `$connect` would be denied whatever
the role allows (AWS docs, "Identity pools (federated identities) authentication flow";
tests/cdk/test_guest_access.py evaluates both flows)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_cognito_identitypool as identitypool
from aws_cdk import aws_iam as iam
from constructs import Construct

from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.nag import acknowledge, acknowledge_checkov
from synapscribe_cdk.stacks.api import ApiStack


def connect_arn(api_id: str, stage: str) -> str:
    """The one thing a guest may invoke: `$connect` of the platform's stage."""
    return f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{api_id}/{stage}/$connect"


class IdentityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        api: ApiStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.pool = identitypool.IdentityPool(
            self,
            "Guests",
            identity_pool_name=f"synapscribe-{config.name}",
            allow_unauthenticated_identities=True,
            allow_classic_flow=True,
        )
        acknowledge(
            self.pool,
            "AwsSolutions-COG7",
            "Students use SynapScribe without an account: a guest identity only names the owner of "
            "their lectures and sessions, and its role may do nothing but open the WebSocket. "
            "Identities are free to mint, so per-owner quotas do not bound spend; the stage and route "
            "throttles and the monthly AWS Budget's action (intake and GPU fleet closed) do.",
        )
        acknowledge_checkov(
            self.pool,
            "CKV_AWS_366",
            "Guest identities are how students sign in (no account); the guest role may only open the "
            "WebSocket. Identities are free to mint, so per-owner quotas do not bound spend; the stage "
            "and route throttles and the monthly AWS Budget's action (intake and GPU fleet closed) do.",
        )
        self.pool.unauthenticated_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                resources=[connect_arn(api.api.api_id, api.stage.stage_name)],
            )
        )
        CfnOutput(
            self, "IdentityPoolId", value=self.pool.identity_pool_id, description="Cognito identity pool"
        )
        # The basic (classic) flow names the role it assumes: clients need its ARN (see
        # synapscribe_ops.smoke.aws_auth for why the enhanced flow cannot reach `$connect`).
        CfnOutput(
            self,
            "GuestRoleArn",
            value=self.pool.unauthenticated_role.role_arn,
            description="guest role for STS AssumeRoleWithWebIdentity (basic flow)",
        )
        CfnOutput(self, "Region", value=self.region, description="AWS_REGION")
