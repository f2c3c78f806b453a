"""IAM statements the platform's roles share: exact actions on exact resources."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws
from aws_cdk import aws_iam as iam

#: What synapscribe.store does to an item (no scans, no secondary indexes).
TABLE_ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
)


def object_arns(bucket_arn: str, prefixes: Iterable[str]) -> list[str]:
    """ARNs of the objects under each prefix (e.g. `lectures/`)."""
    return [f"{bucket_arn}/{prefix}*" for prefix in prefixes]


def objects(actions: Iterable[str], bucket_arn: str, prefixes: Iterable[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=sorted(actions), resources=object_arns(bucket_arn, prefixes))


def list_under(bucket_arn: str, prefixes: Iterable[str]) -> iam.PolicyStatement:
    """ListBucket for keys under `prefixes` only (a listing request carries its prefix as s3:prefix)."""
    return iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )


def tables(actions: Iterable[str], table_arns: Iterable[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=sorted(actions), resources=list(table_arns))


def connections_arn(api_id: str, stage: str, method: str = "POST") -> str:
    """@connections calls with one HTTP method on one stage of one WebSocket API (POST sends a
    message; GET and DELETE, which the platform never makes, would read or close connections)."""
    return f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{api_id}/{stage}/{method}/@connections/*"


def post_to_connections(api_id: str, stage: str) -> iam.PolicyStatement:
    """Send messages to clients (synapscribe.connections.ConnectionPusher.post) and nothing else."""
    return iam.PolicyStatement(
        actions=["execute-api:ManageConnections"], resources=[connections_arn(api_id, stage)]
    )
