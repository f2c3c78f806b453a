"""Deployed mode of the smoke client: Cognito guest credentials (moto) through the basic flow and
a SigV4-signed `$connect`, received by the local gateway exactly as API Gateway would receive it."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from synapscribe.contract import ACTIONS
from synapscribe_local.gateway import Gateway
from synapscribe_local.supervisor import free_port
from synapscribe_ops.smoke.aws_auth import GuestAccess, cognito_identity
from synapscribe_ops.smoke.runner import deployed_connector

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


def guest_pool() -> GuestAccess:
    """An identity pool that allows guests and the guest role Cognito's tokens may assume (moto)."""
    cognito = boto3.client("cognito-identity", region_name=REGION)
    pool = cognito.create_identity_pool(
        IdentityPoolName="smoke", AllowUnauthenticatedIdentities=True, AllowClassicFlow=True
    )["IdentityPoolId"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {"cognito-identity.amazonaws.com:aud": pool},
                    "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "unauthenticated"},
                },
            }
        ],
    }
    role = boto3.client("iam").create_role(RoleName="guest", AssumeRolePolicyDocument=json.dumps(trust))
    return GuestAccess(pool, role["Role"]["Arn"], REGION)


def recorded_calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "provide-client-params.*.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    return calls


def test_guest_credentials_come_from_the_basic_flow(aws_env: None) -> None:
    with mock_aws():
        access = guest_pool()
        cognito = boto3.client("cognito-identity", region_name=REGION)
        sts = boto3.client("sts", region_name=REGION)
        cognito_calls, sts_calls = recorded_calls(cognito), recorded_calls(sts)
        ident = cognito_identity(access.identity_pool_id, REGION, access.guest_role_arn, cognito, sts)
        # GetCredentialsForIdentity (the enhanced flow) would scope the credentials down with a
        # session policy that has no execute-api: it must never be called.
        assert [name for name, _ in cognito_calls] == ["GetId", "GetOpenIdToken"]
        assert cognito_calls[1][1]["IdentityId"] == ident.identity_id
        ((name, params),) = sts_calls
        assert name == "AssumeRoleWithWebIdentity"
        assert params["RoleArn"] == access.guest_role_arn
        assert params["WebIdentityToken"]
        assert ":" not in params["RoleSessionName"] and 2 <= len(params["RoleSessionName"]) <= 64
        assert ident.identity_id.startswith(f"{REGION}:")
        # The credentials act as the guest role, not as the caller's own identity.
        caller = boto3.client(
            "sts",
            region_name=REGION,
            aws_access_key_id=ident.credentials.access_key,
            aws_secret_access_key=ident.credentials.secret_key,
            aws_session_token=ident.credentials.token,
        ).get_caller_identity()
        assert ":assumed-role/guest/" in caller["Arn"]
        assert ident.credentials.token


async def test_signed_connect_reaches_the_gateway(aws_env: None) -> None:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            seen.append(event)
        return {"statusCode": 200}

    gateway = Gateway(handler, port=free_port(), connections_port=free_port(), route_keys=ACTIONS)
    await gateway.start()
    try:
        with mock_aws():
            access = guest_pool()
            connect = deployed_connector(gateway.url + "/prod", access)
            client = await connect("student")
            await client.close()
    finally:
        await gateway.stop()
    headers = {k.lower(): v for k, v in seen[0]["headers"].items()}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/eu-west-1/execute-api/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert headers["x-amz-security-token"]
