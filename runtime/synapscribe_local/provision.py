"""Create the bucket and tables the platform expects, for the local stack and the tests.

In AWS the CDK app creates them; this mirrors its key schema, TTL and the sweeper's sparse index
(store.TABLE_KEYS, store.SWEEP_INDEXES).
"""

from __future__ import annotations

from typing import Any

import boto3
from synapscribe.host_registry import ALL_TABLE_KEYS
from synapscribe.settings import AwsResources
from synapscribe.store import SWEEP_ATTRIBUTE, SWEEP_INDEX, SWEEP_INDEXES, TTL_ATTRIBUTE


def sweep_index(field: str) -> dict[str, Any] | None:
    """CreateTable's GlobalSecondaryIndexes entry for the sweeper's sparse index on table `field`
    (store.SWEEP_INDEXES), None for a table without one."""
    for index in SWEEP_INDEXES:
        if index.table != field:
            continue
        projection: dict[str, Any] = {"ProjectionType": "ALL"}
        if index.projection is not None:
            projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.projection)}
        return {
            "IndexName": SWEEP_INDEX,
            "KeySchema": [{"AttributeName": SWEEP_ATTRIBUTE, "KeyType": "HASH"}],
            "Projection": projection,
        }
    return None


def provision(resources: AwsResources, s3: Any | None = None, dynamodb: Any | None = None) -> None:
    s3 = s3 or boto3.client("s3")
    dynamodb = dynamodb or boto3.client("dynamodb")
    existing_buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if resources.bucket not in existing_buckets:
        region = s3.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": resources.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
    existing_tables = set(dynamodb.list_tables().get("TableNames", []))
    for field, key in ALL_TABLE_KEYS.items():
        name = getattr(resources, field)
        if name is None or name in existing_tables:  # the host registry is optional
            continue
        attributes = [{"AttributeName": key, "AttributeType": "S"}]
        extra: dict[str, Any] = {}
        index = sweep_index(field)
        if index is not None:
            attributes.append({"AttributeName": SWEEP_ATTRIBUTE, "AttributeType": "S"})
            extra["GlobalSecondaryIndexes"] = [index]
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name)
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
