"""Deployed stacks: Cognito identity-pool credentials and a SigV4-signed `$connect`.

The WebSocket API's `$connect` route uses IAM authorization; a client signs the upgrade request
for the `execute-api` service with the temporary credentials its (unauthenticated) Cognito
identity gets.

Guests must use the basic (classic) flow: `GetId`, `GetOpenIdToken`, then STS
`AssumeRoleWithWebIdentity` with the guest role (the Identity stack's `GuestRoleArn` output).
The enhanced flow (`GetCredentialsForIdentity`) hands unauthenticated identities credentials
scoped down by Cognito's managed session policy `AmazonCognitoUnAuthedIdentitiesSessionPolicy`,
which has no `execute-api` action, so their signed `$connect` is denied whatever the guest role
allows (AWS docs: Cognito developer guide, "Identity pools authentication flow" and "IAM roles",
scope-down policy for unauthenticated identities). No call in this flow needs AWS credentials of
its own: GetId, GetOpenIdToken and AssumeRoleWithWebIdentity are unsigned operations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class GuestAccess:
    """What a client needs to become a guest of a deployed stack (all Identity stack outputs)."""

    identity_pool_id: str
    guest_role_arn: str
    region: str


def cognito_identity(
    identity_pool_id: str,
    region: str,
    guest_role_arn: str,
    client: Any | None = None,
    sts_client: Any | None = None,
) -> CognitoIdentity:
    """A fresh unauthenticated identity from the pool and the guest role's temporary credentials,
    through the basic flow (see the module docstring for why not the enhanced one)."""
    cognito = client or boto3.client("cognito-identity", region_name=region)
    sts = sts_client or boto3.client("sts", region_name=region)
    identity_id = cognito.get_id(IdentityPoolId=identity_pool_id)["IdentityId"]
    token = cognito.get_open_id_token(IdentityId=identity_id)["Token"]
    creds = sts.assume_role_with_web_identity(
        RoleArn=guest_role_arn,
        # [\w+=,.@-]{2,64}: the identity id's UUID part (its "region:" prefix has a colon).
        RoleSessionName="guest-" + identity_id.rsplit(":", 1)[-1][:58],
        WebIdentityToken=token,
    )["Credentials"]
    return CognitoIdentity(
        identity_id=identity_id,
        credentials=Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
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
    """URL, identity pool id, guest role ARN and region from `cdk deploy --outputs-file` JSON (any stack name,
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
        elif "guestrole" in k and value.startswith("arn:"):
            found["guestRoleArn"] = value
        elif k == "region" or k.endswith("region"):
            found["region"] = value
    if "region" not in found and "identityPoolId" in found and ":" in found["identityPoolId"]:
        found["region"] = found["identityPoolId"].split(":", 1)[0]
    return found


def deployed_target(
    url: str | None,
    region: str | None,
    identity_pool_id: str | None,
    guest_role_arn: str | None,
    stack_outputs: Path | None,
) -> tuple[str | None, GuestAccess | None]:
    """The URL and, for a deployed stack, its guest access, from the flags and `--stack-outputs`
    (flags win). Raises ValueError with the message for the user when they do not add up."""
    if stack_outputs:
        try:
            found = read_stack_outputs(json.loads(stack_outputs.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--stack-outputs: cannot read {stack_outputs}: {exc}") from None
        url = url or found.get("url")
        region = region or found.get("region")
        identity_pool_id = identity_pool_id or found.get("identityPoolId")
        guest_role_arn = guest_role_arn or found.get("guestRoleArn")
        if not (url and identity_pool_id and guest_role_arn and region):
            raise ValueError(
                f"--stack-outputs: {stack_outputs} lacks the WebSocket URL, identity pool, "
                "guest role (GuestRoleArn) or region"
            )
    given = (identity_pool_id, guest_role_arn, region)
    if any(given) and not all(given):
        raise ValueError("--identity-pool-id, --guest-role-arn and --region go together (deployed mode)")
    if identity_pool_id and guest_role_arn and region:
        return url, GuestAccess(identity_pool_id, guest_role_arn, region)
    return url, None
