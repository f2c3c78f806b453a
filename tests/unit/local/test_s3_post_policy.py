"""The local stack enforces presigned POST policies as S3 does (moto does not)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from synapscribe.platform import PlatformConfig
from synapscribe_local.aws import LOCAL_CREDENTIALS, moto_server, prepare
from synapscribe_local.s3_post_policy import PolicyViolation, check_policy
from synapscribe_local.supervisor import free_port

SECRETS = {LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
KEY = "lectures/alice/lec_1.mp3"


def presigned(key: str = KEY, max_bytes: int = 100, expires: int = 300) -> dict[str, Any]:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return s3.generate_presigned_post(  # type: ignore[no-any-return]
        "bucket",
        key,
        Fields={"Content-Type": "audio/mpeg"},
        Conditions=[{"Content-Type": "audio/mpeg"}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires,
    )


def test_valid_upload_passes() -> None:
    check_policy("bucket", presigned()["fields"], 50, SECRETS)


@pytest.mark.parametrize(
    ("change", "size", "code"),
    [
        ({"key": "lectures/mallory/lec_1.mp3"}, 50, "AccessDenied"),
        ({"Content-Type": "text/plain"}, 50, "AccessDenied"),
        ({"acl": "public-read"}, 50, "AccessDenied"),
        ({"x-amz-signature": "0" * 64}, 50, "SignatureDoesNotMatch"),
        ({"x-amz-credential": "someone/20260101/us-east-1/s3/aws4_request"}, 50, "InvalidAccessKeyId"),
        ({}, 101, "EntityTooLarge"),
        ({}, 0, "EntityTooSmall"),
    ],
)
def test_violations(change: dict[str, str], size: int, code: str) -> None:
    fields = {**presigned()["fields"], **change}
    with pytest.raises(PolicyViolation) as info:
        check_policy("bucket", fields, size, SECRETS)
    assert info.value.code == code


def test_other_bucket_and_expiry() -> None:
    fields = presigned()["fields"]
    with pytest.raises(PolicyViolation, match="Condition failed"):
        check_policy("other-bucket", fields, 50, SECRETS)
    with pytest.raises(PolicyViolation, match="expired"):
        check_policy("bucket", fields, 50, SECRETS, now=datetime.now(UTC) + timedelta(minutes=6))
    # A policy edited to allow more is no longer signed.
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)]
    forged = {**fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    with pytest.raises(PolicyViolation) as info:
        check_policy("bucket", forged, 10_000, SECRETS)
    assert info.value.code == "SignatureDoesNotMatch"


def test_signature_v2_policies() -> None:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3"),
    )
    fields = s3.generate_presigned_post("bucket", KEY)["fields"]
    assert "AWSAccessKeyId" in fields
    check_policy("bucket", fields, 10, SECRETS)
    with pytest.raises(PolicyViolation):
        check_policy("bucket", {**fields, "signature": "AAAA"}, 10, SECRETS)


def test_enforced_by_the_local_moto_server(aws_env: None, platform: PlatformConfig) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with moto_server(free_port()) as endpoint:
        local = prepare(endpoint, platform)
        s3 = local.client("s3")
        post = s3.generate_presigned_post(
            local.resources.bucket,
            KEY,
            Fields={"Content-Type": "audio/mpeg"},
            Conditions=[{"Content-Type": "audio/mpeg"}, ["content-length-range", 1, 100]],
            ExpiresIn=300,
        )
        too_big = httpx.post(
            post["url"], data=post["fields"], files={"file": ("a.mp3", b"x" * 101, "audio/mpeg")}
        )
        assert too_big.status_code == 400 and b"EntityTooLarge" in too_big.content
        elsewhere = httpx.post(
            post["url"],
            data={**post["fields"], "key": "lectures/bob/lec_2.mp3"},
            files={"file": ("a.mp3", b"x" * 10, "audio/mpeg")},
        )
        assert elsewhere.status_code == 403
        assert s3.list_objects_v2(Bucket=local.resources.bucket).get("KeyCount", 0) == 0
        ok = httpx.post(post["url"], data=post["fields"], files={"file": ("a.mp3", b"x" * 10, "audio/mpeg")})
        assert ok.status_code == 204
        assert s3.get_object(Bucket=local.resources.bucket, Key=KEY)["Body"].read() == b"x" * 10
