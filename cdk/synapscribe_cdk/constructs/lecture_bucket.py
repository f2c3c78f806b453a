"""The platform's S3 bucket: lectures, queries, responses, transcripts and segments."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct
from synapscribe import keys
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.nag import acknowledge_checkov, acknowledge_log_bucket


class LectureBucket(Construct):
    """Private, TLS-only, encrypted bucket with browser-upload CORS and ephemeral prefixes.

    `queries/` and `responses/` expire after `storage.ephemeral_days`; `lectures/`,
    `transcripts/` and `segments/` after `storage.retention_days` (their DynamoDB items carry the
    same TTL). Server access logs go to a second bucket of the same stack. With a DESTROY removal
    policy (dev) both buckets empty themselves when the stack is deleted; RETAIN (prod) keeps them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: PlatformConfig,
        cors_allowed_origins: list[str],
        removal_policy: RemovalPolicy,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = log_bucket(self, "AccessLogs", log_retention_days, removal_policy)
        prefixes = platform.storage.prefixes
        ephemeral = Duration.days(platform.storage.ephemeral_days)
        retained = Duration.days(platform.storage.retention_days)
        self.bucket = private_bucket(
            self,
            "Bucket",
            logs=self.access_logs,
            removal=removal_policy,
            cors=[
                s3.CorsRule(
                    # Presigned POST uploads from the browser, presigned GET of answers.
                    allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=cors_allowed_origins,
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-queries", prefix=prefixes.queries, expiration=ephemeral),
                s3.LifecycleRule(id="expire-responses", prefix=prefixes.responses, expiration=ephemeral),
                *(
                    s3.LifecycleRule(id=f"expire-{prefix.rstrip('/')}", prefix=prefix, expiration=retained)
                    for prefix in (prefixes.lectures, prefixes.transcripts, prefixes.segments)
                ),
                # An upload carries the pending tag (its POST policy requires it) until the
                # validator promotes it: a file nobody validated is gone within a day.
                s3.LifecycleRule(
                    id="expire-pending-uploads",
                    tag_filters={keys.STATE_TAG: keys.PENDING},
                    expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
        )
        acknowledge_checkov(
            self.bucket,
            "CKV_AWS_21",
            "Lectures, transcripts and answers must be gone when they expire or their owner deletes "
            "them; versioning would keep every deleted object as a noncurrent version.",
        )


def private_bucket(
    scope: Construct, construct_id: str, *, logs: s3.IBucket, removal: RemovalPolicy, **extra: Any
) -> s3.Bucket:
    """A bucket nobody outside the account reads: public access blocked, TLS only, SSE-S3, ACLs off,
    access logs to `logs`, emptied on destroy where the environment destroys. `extra` adds the
    caller's own settings (CORS, lifecycle)."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        encryption=s3.BucketEncryption.S3_MANAGED,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=logs,
        server_access_logs_prefix="bucket/",
        removal_policy=removal,
        auto_delete_objects=removal == RemovalPolicy.DESTROY,
        **extra,
    )


def log_bucket(scope: Construct, construct_id: str, retention_days: int, removal: RemovalPolicy) -> s3.Bucket:
    """A private bucket that receives logs (S3 server access logs, CloudFront standard logs) and
    expires them after `retention_days`."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        # Server access logging delivers only to SSE-S3 buckets.
        encryption=s3.BucketEncryption.S3_MANAGED,
        # CloudFront's standard logs are delivered with an ACL grant.
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(retention_days))],
        removal_policy=removal,
        auto_delete_objects=removal == RemovalPolicy.DESTROY,
    )
    acknowledge_log_bucket(bucket)
    return bucket
