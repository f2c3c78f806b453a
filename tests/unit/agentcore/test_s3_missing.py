"""AgentCore tells a missing object from a denied one when its role may list only some prefixes.

S3 answers a GetObject of a missing key with 404 only if the caller may list the bucket; the GPU
role's ListBucket is limited to the platform's prefixes by an s3:prefix condition, which a
GetObject request does not carry, so the answer may be 403 (Amazon S3 API Reference, GetObject:
without s3:ListBucket on the bucket, a missing key is answered 403 Access Denied, not 404).
"""

from __future__ import annotations

from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from synapscribe.agentcore.aws import AwsIo
from synapscribe.connections import ConnectionPusher
from synapscribe.store import Store

BUCKET = "synapscribe-test"
KEY = "segments/lec_1/0003.json"


@pytest.fixture
def io(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws = AwsIo(cast(Store, None), BUCKET, cast(ConnectionPusher, None), workers=1)
    aws.s3 = boto3.client("s3", region_name="eu-west-1")
    yield aws
    aws.close()


def _deny(stub: Stubber, code: str, status: int) -> None:
    stub.add_client_error(
        "get_object",
        service_error_code=code,
        http_status_code=status,
        expected_params={"Bucket": BUCKET, "Key": KEY},
    )


def _listing(stub: Stubber, keys: list[str]) -> None:
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": k} for k in keys], "KeyCount": len(keys)},
        {"Bucket": BUCKET, "Prefix": KEY, "MaxKeys": 1},
    )


def test_404_is_missing_without_a_listing(io: Any) -> None:
    with Stubber(io.s3) as stub:
        _deny(stub, "NoSuchKey", 404)
        assert io._get(KEY) is None
        stub.assert_no_pending_responses()


def test_403_for_a_key_that_is_not_listed_is_missing(io: Any) -> None:
    with Stubber(io.s3) as stub:
        _deny(stub, "AccessDenied", 403)
        _listing(stub, [])
        assert io._get(KEY) is None
        stub.assert_no_pending_responses()


def test_403_for_a_key_that_exists_is_a_real_denial(io: Any) -> None:
    with Stubber(io.s3) as stub:
        _deny(stub, "AccessDenied", 403)
        _listing(stub, [KEY])
        with pytest.raises(ClientError, match="AccessDenied"):
            io._get(KEY)


def test_a_longer_key_under_the_same_prefix_does_not_count(io: Any) -> None:
    with Stubber(io.s3) as stub:
        _deny(stub, "AccessDenied", 403)
        _listing(stub, [KEY + ".tmp"])
        assert io._get(KEY) is None


def test_a_denied_listing_raises(io: Any) -> None:
    with Stubber(io.s3) as stub:
        _deny(stub, "AccessDenied", 403)
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ClientError, match="ListObjectsV2"):
            io._get(KEY)
