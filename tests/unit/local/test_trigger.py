"""The local stack's upload trigger: S3's own event for a new lecture reaches the validation
handler through the bucket notification and SQS; failures are retried twice, like Lambda."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws
from synapscribe.platform import PlatformConfig
from synapscribe_local.aws import LocalAws, prepare
from synapscribe_local.trigger import MAX_ATTEMPTS, UploadTrigger


@pytest.fixture
def local_aws(aws_env: None, platform: PlatformConfig) -> Any:
    with mock_aws():
        # In-process moto: prepare() with no endpoint talks to the mocked clients.
        yield prepare(None, platform, region="eu-west-1")


def drain(trigger: UploadTrigger) -> None:
    while trigger.poll_once():
        pass


def test_lecture_upload_event_reaches_handler(local_aws: LocalAws) -> None:
    events: list[dict[str, Any]] = []
    trigger = UploadTrigger(boto3.client("sqs"), local_aws.queue_url, lambda e, c: events.append(e), 0)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=local_aws.resources.bucket, Key="lectures/eu-west-1:abc/lec_1.mp3", Body=b"ID3")
    s3.put_object(Bucket=local_aws.resources.bucket, Key="queries/eu-west-1:abc/qry_1.mp3", Body=b"ID3")
    drain(trigger)
    assert len(events) == 1
    record = events[0]["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == local_aws.resources.bucket
    assert unquote_plus(record["s3"]["object"]["key"]) == "lectures/eu-west-1:abc/lec_1.mp3"
    assert record["s3"]["object"]["size"] == 3


def test_failures_are_retried_then_dropped(local_aws: LocalAws) -> None:
    calls: list[int] = []

    def flaky(event: dict[str, Any], context: Any) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    trigger = UploadTrigger(boto3.client("sqs"), local_aws.queue_url, flaky, retry_after_seconds=0)
    boto3.client("s3").put_object(Bucket=local_aws.resources.bucket, Key="lectures/o/lec_2.wav", Body=b"RIFF")
    for _ in range(10):
        trigger.poll_once()
    assert len(calls) == MAX_ATTEMPTS
    assert trigger.failures == MAX_ATTEMPTS
