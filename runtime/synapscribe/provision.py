"""Create the bucket and tables the platform expects, for the local stack and the tests.

In AWS the CDK app creates them; this mirrors its key schema and TTL (store.TABLE_KEYS).
"""

from __future__ import annotations

from typing import Any

import boto3

from synapscribe.settings import AwsResources
from synapscribe.store import TABLE_KEYS, TTL_ATTRIBUTE


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
    for field, key in TABLE_KEYS.items():
        name = getattr(resources, field)
        if name in existing_tables:
            continue
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name)
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
