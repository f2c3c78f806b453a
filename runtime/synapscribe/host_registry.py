"""The AgentCore host registry: one DynamoDB item per host (`hostId`), written by the host itself.

Each AgentCore writes its own item on a timer (agentcore/registration.py): its address, whether it
is ready, its questions in flight and their target, the lectures its model server holds, and a
heartbeat with a TTL, so an item of a host that died without leaving expires by itself. A
draining host deletes its item first, before it refuses work. The WebSocket handler and the
validator read the items and pick a lecture's host with edge/routing.py; without a registry (or
with no live host in it) they use the internal balancer as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3

from synapscribe.store import TABLE_KEYS, TTL_ATTRIBUTE

log = logging.getLogger(__name__)

HOST_KEY = "hostId"
#: Every table the platform makes (the CDK data stack, provision.py): the store's and the registry.
ALL_TABLE_KEYS = {**TABLE_KEYS, "hosts_table": HOST_KEY}
#: A host lists at most this many lectures (an item stays far under DynamoDB's 400 KB).
MAX_LECTURES_LISTED = 256


@dataclass(frozen=True)
class Host:
    """A registered AgentCore host as the registry last heard from it."""

    host_id: str
    #: AgentCore's base URL on the host (http://address:port)
    url: str
    ready: bool
    in_flight: int
    #: questions in flight at or over which the host is passed over
    target: int
    #: epoch seconds of its last heartbeat
    heartbeat_at: float
    lectures: frozenset[str] = field(default_factory=frozenset)


def host_item(host: Host, ttl_seconds: int) -> dict[str, Any]:
    """The host's registry item; DynamoDB's TTL removes it `ttl_seconds` after the heartbeat."""
    return {
        HOST_KEY: host.host_id,
        "url": host.url,
        "ready": host.ready,
        "inFlight": host.in_flight,
        "target": host.target,
        "heartbeatAt": int(host.heartbeat_at),
        "lectures": sorted(host.lectures)[:MAX_LECTURES_LISTED],
        TTL_ATTRIBUTE: int(host.heartbeat_at) + ttl_seconds,
    }


def host_from_item(item: dict[str, Any]) -> Host | None:
    """The host an item describes, or None (logged) when it is malformed."""
    try:
        return Host(
            host_id=str(item[HOST_KEY]),
            url=str(item["url"]),
            ready=bool(item["ready"]),
            in_flight=int(item["inFlight"]),
            target=int(item["target"]),
            heartbeat_at=float(item["heartbeatAt"]),
            lectures=frozenset(str(x) for x in item.get("lectures") or ()),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("host registry: a malformed item was skipped: %r", {k: item.get(k) for k in (HOST_KEY,)})
        return None


class HostRegistry:
    """The registry table (a boto3 DynamoDB Table resource)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @classmethod
    def named(cls, table_name: str, dynamodb: Any | None = None) -> HostRegistry:
        return cls((dynamodb or boto3.resource("dynamodb")).Table(table_name))

    def put(self, host: Host, ttl_seconds: int) -> None:
        self.table.put_item(Item=host_item(host, ttl_seconds))

    def leave(self, host_id: str) -> None:
        self.table.delete_item(Key={HOST_KEY: host_id})

    def hosts(self) -> list[Host]:
        """Every registered host (a fleet is tens of items: one scan, paginated)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [h for h in (host_from_item(i) for i in items) if h is not None]
