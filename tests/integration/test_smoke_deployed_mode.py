"""Deployed mode of the smoke client: Cognito credentials (moto) and a SigV4-signed `$connect`,
received by the local gateway exactly as API Gateway would receive it."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from synapscribe.contract import ACTIONS
from synapscribe.local.gateway import Gateway
from synapscribe.local.supervisor import free_port
from synapscribe.smoke.aws_auth import cognito_identity
from synapscribe.smoke.runner import deployed_connector

pytestmark = pytest.mark.integration


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
            cognito = boto3.client("cognito-identity", region_name="eu-west-1")
            pool = cognito.create_identity_pool(
                IdentityPoolName="smoke", AllowUnauthenticatedIdentities=True
            )["IdentityPoolId"]
            connect = deployed_connector(gateway.url + "/prod", pool, "eu-west-1")
            client = await connect("student")
            await client.close()
            ident = cognito_identity(pool, "eu-west-1", cognito)
            assert ident.identity_id.startswith("eu-west-1:")
    finally:
        await gateway.stop()
    headers = {k.lower(): v for k, v in seen[0]["headers"].items()}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/eu-west-1/execute-api/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert headers["x-amz-security-token"]
