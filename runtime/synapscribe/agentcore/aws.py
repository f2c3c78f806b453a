"""Async access to S3, DynamoDB and @connections: boto3 is synchronous, so its calls run on a
dedicated thread pool sized for many concurrent queries (the default pool has cpu+4 threads)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from synapscribe.connections import ConnectionGone, ConnectionPusher
from synapscribe.contract import ServerModel
from synapscribe.store import Store

T = TypeVar("T")

BOTO_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=64,
)


class Spans:
    """Intervals a query spent waiting on something outside AgentCore (for the overhead figure)."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float, str]] = []

    def add(self, start: float, end: float, what: str) -> None:
        self.intervals.append((start, end, what))

    def covered(self, start: float, end: float) -> float:
        """Seconds of [start, end] covered by at least one interval."""
        total, cursor = 0.0, start
        for a, b, _ in sorted(self.intervals):
            a, b = max(a, cursor), min(b, end)
            if b > a:
                total += b - a
                cursor = b
        return total


class AwsIo:
    def __init__(self, store: Store, bucket: str, pusher: ConnectionPusher, workers: int = 64) -> None:
        self.store = store
        self.bucket = bucket
        self.pusher = pusher
        self.s3 = boto3.client("s3", config=BOTO_CONFIG)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aws")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def call(
        self, fn: Callable[..., T], *args: Any, spans: Spans | None = None, what: str = "aws"
    ) -> T:
        start = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            if spans is not None:
                spans.add(start, time.perf_counter(), what)

    # S3 ------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        """The object, or None when there is none (not made yet, or gone)."""
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            # The instance role may list only the platform's prefixes (an s3:prefix condition),
            # which a GetObject request does not carry, so S3 may answer a missing key with 403
            # instead of 404. A listing of exactly that key (it carries the prefix) tells a
            # missing object from a real denial, which still raises.
            if code in ("AccessDenied", "403") and not self._listed(key):
                return None
            raise

    def _listed(self, key: str) -> bool:
        # The key itself sorts first among the keys it prefixes, so one result suffices.
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item.get("Key") == key for item in listing.get("Contents", []))

    async def get(self, key: str, spans: Spans | None = None) -> bytes | None:
        return await self.call(self._get, key, spans=spans, what="s3.get")

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def put(self, key: str, data: bytes, content_type: str, spans: Spans | None = None) -> None:
        await self.call(self._put, key, data, content_type, spans=spans, what="s3.put")

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await self.call(self._delete, keys, what="s3.delete")

    def presign(self, key: str, expires: int) -> str:
        return str(
            self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
            )
        )

    # @connections --------------------------------------------------------

    async def push(self, connection_id: str, message: ServerModel, spans: Spans | None = None) -> bool:
        """Send one message; False when the client is gone."""
        try:
            await self.call(self.pusher.post, connection_id, message, spans=spans, what="push")
        except ConnectionGone:
            return False
        return True


def make_pusher(endpoint: str) -> ConnectionPusher:
    return ConnectionPusher(
        endpoint, client=boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=BOTO_CONFIG)
    )
