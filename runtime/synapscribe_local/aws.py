"""Local AWS for the stack: a moto server on loopback with the platform's bucket and tables,
and the bucket's notification for new lectures delivered to an SQS queue in the same moto, so
the validation trigger receives the S3 event that S3 itself produced."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from synapscribe.platform import PlatformConfig
from synapscribe.settings import AwsResources

from synapscribe_local.provision import provision

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
UPLOAD_QUEUE = "synapscribe-local-lecture-uploads"
LOCAL_RESOURCES = {
    "SYNAPSCRIBE_BUCKET": "synapscribe-local",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-local-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-local-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-local-sessions",
    "SYNAPSCRIBE_LIMITS_TABLE": "synapscribe-local-limits",
    "SYNAPSCRIBE_HOSTS_TABLE": "synapscribe-local-hosts",
}


@dataclass(frozen=True)
class LocalAws:
    endpoint_url: str | None  # None: in-process moto (tests)
    region: str
    resources: AwsResources
    queue_url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def env(self) -> dict[str, str]:
        """What every process of the stack needs to find this AWS (and never the real one)."""
        env = {
            **LOCAL_CREDENTIALS,
            **LOCAL_RESOURCES,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


@contextmanager
def moto_server(port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """A moto server in this process (threads), with S3 POST policies enforced; yields its URL.
    The one moto helper of the local stack, `bench pipeline` (local/harness.py) and the tests."""
    from moto.moto_server import werkzeug_app
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from synapscribe_local.moto_atomic import atomic_dynamodb_writes
    from synapscribe_local.s3_post_policy import enforce_post_policy

    atomic_dynamodb_writes()

    # moto's server otherwise answers every origin (flask-cors): only the bucket's own CORS rules
    # may, as in S3, so a page origin missing from them fails here as it would in AWS.
    werkzeug_app.DISABLE_GLOBAL_CORS = True
    app = enforce_post_policy(
        DomainDispatcherApplication(create_backend_app),
        {LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]},
    )
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    # werkzeug logs one access line per request at INFO: only its warnings are worth a line.
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        werkzeug_log.setLevel(level)


def prepare(endpoint_url: str | None, platform: PlatformConfig, region: str = LOCAL_REGION) -> LocalAws:
    """Create bucket, tables, the upload queue and the bucket notification for `lectures/`."""
    resources = AwsResources(
        bucket=LOCAL_RESOURCES["SYNAPSCRIBE_BUCKET"],
        connections_table=LOCAL_RESOURCES["SYNAPSCRIBE_CONNECTIONS_TABLE"],
        lectures_table=LOCAL_RESOURCES["SYNAPSCRIBE_LECTURES_TABLE"],
        sessions_table=LOCAL_RESOURCES["SYNAPSCRIBE_SESSIONS_TABLE"],
        limits_table=LOCAL_RESOURCES["SYNAPSCRIBE_LIMITS_TABLE"],
        hosts_table=LOCAL_RESOURCES["SYNAPSCRIBE_HOSTS_TABLE"],
    )
    partial = LocalAws(endpoint_url, region, resources, queue_url="")
    s3, sqs = partial.client("s3"), partial.client("sqs")
    provision(resources, s3, partial.client("dynamodb"))
    queue_url = sqs.create_queue(QueueName=UPLOAD_QUEUE, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=resources.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "validate-lectures",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [{"Name": "prefix", "Value": platform.storage.prefixes.lectures}]
                        }
                    },
                }
            ]
        },
    )
    return LocalAws(endpoint_url, region, resources, queue_url)


def allow_page_origin(s3: Any, bucket: str, origin: str) -> None:
    """The bucket's CORS for the student page: the rule the CDK app gives the lecture bucket
    (cdk/synapscribe_cdk/constructs/lecture_bucket.py), with the page's origin."""
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedMethods": ["POST", "GET", "HEAD"],
                    "AllowedOrigins": [origin],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3000,
                }
            ]
        },
    )


def s3_event_from_sqs_body(body: str) -> dict[str, Any] | None:
    """The S3 event carried by one queue message, or None for S3's own `s3:TestEvent`."""
    event = json.loads(body)
    if not isinstance(event, dict) or "Records" not in event:
        return None
    return event
