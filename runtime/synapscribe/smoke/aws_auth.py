"""Deployed stacks: Cognito identity-pool credentials and a SigV4-signed `$connect`.

The WebSocket API's `$connect` route uses IAM authorization; a client signs the upgrade request
for the `execute-api` service with the temporary credentials its (unauthenticated) Cognito
identity gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass(frozen=True)
class CognitoIdentity:
    identity_id: str
    credentials: Credentials


def cognito_identity(identity_pool_id: str, region: str, client: Any | None = None) -> CognitoIdentity:
    """A fresh unauthenticated identity from the pool and its temporary credentials."""
    cognito = client or boto3.client("cognito-identity", region_name=region)
    identity_id = cognito.get_id(IdentityPoolId=identity_pool_id)["IdentityId"]
    creds = cognito.get_credentials_for_identity(IdentityId=identity_id)["Credentials"]
    return CognitoIdentity(
        identity_id=identity_id,
        credentials=Credentials(creds["AccessKeyId"], creds["SecretKey"], creds.get("SessionToken")),
    )


def signed_connect_headers(url: str, credentials: Credentials, region: str) -> dict[str, str]:
    """Headers that sign a WebSocket upgrade to `url` (wss://…) for execute-api."""
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    https = urlunsplit(
        ("https" if parts.scheme == "wss" else "http", parts.netloc, parts.path or "/", parts.query, "")
    )
    request = AWSRequest(method="GET", url=https, headers={"Host": parts.netloc})
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def read_stack_outputs(document: dict[str, Any]) -> dict[str, str]:
    """URL, identity pool id and region from `cdk deploy --outputs-file` JSON (any stack name,
    output names matched loosely) or from a flat {name: value} object."""
    flat: dict[str, str] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update({k: str(v) for k, v in value.items()})
        else:
            flat[key] = str(value)
    found: dict[str, str] = {}
    for key, value in flat.items():
        k = key.lower()
        if value.startswith("wss://") and "url" not in found:
            found["url"] = value
        elif "identitypool" in k and "id" in k:
            found["identityPoolId"] = value
        elif k == "region" or k.endswith("region"):
            found["region"] = value
    if "region" not in found and "identityPoolId" in found and ":" in found["identityPoolId"]:
        found["region"] = found["identityPoolId"].split(":", 1)[0]
    return found
