"""Message rates per connection and per source address, counted in the limits table.

API Gateway's stage throttle is one bucket for every client, so one client flooding it would
throttle every student. Here each connection, and each source address, may send at most
`rates.connection_messages` / `rates.source_messages` messages in each fixed window of
`rates.window_seconds` (platform.yaml); over either, the message is answered `rate_limited`,
nothing else is done with it and the connection stays open. A connection over its own limit is
not counted against its address, so a flooding connection takes at most its own share of the
address's window from the others behind the same NAT.

One window is one item (`limitId` = `conn#<id>` or `ip#<address>`) counted by a conditional
UpdateItem, so concurrent Lambda invocations never let more through than the limit.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from synapscribe.contract import ContractError, ErrorCode
from synapscribe.platform import Rates
from synapscribe.store import TTL_ATTRIBUTE, Store


class WindowCounter:
    """At most `limit` hits per fixed window of `window` seconds for one key."""

    def __init__(self, table: Any, window: int, clock: Any) -> None:
        self.table = table
        self.window = window
        self.clock = clock

    def hit(self, limit_id: str, limit: int) -> bool:
        """Count one hit; False (and nothing counted) when the window is full."""
        now = int(self.clock())
        start = now - now % self.window
        # Two tries: a window that another invocation has just opened is counted in on the second.
        return any(self._count(limit_id, start, limit) or self._open(limit_id, start) for _ in range(2))

    def _count(self, limit_id: str, start: int, limit: int) -> bool:
        return self._update(
            limit_id,
            "SET n = n + :one",
            "windowStart = :w AND n < :max",
            {":one": 1, ":w": start, ":max": limit},
        )

    def _open(self, limit_id: str, start: int) -> bool:
        return self._update(
            limit_id,
            f"SET windowStart = :w, n = :one, {TTL_ATTRIBUTE} = :e",
            "attribute_not_exists(limitId) OR windowStart < :w",
            {":one": 1, ":w": start, ":e": start + 2 * self.window},
        )

    def _update(self, limit_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        try:
            self.table.update_item(
                Key={"limitId": limit_id},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


class MessageRates:
    """The handler's gate: `admit` raises ContractError(rate_limited) over either limit."""

    def __init__(self, store: Store, rates: Rates) -> None:
        self.rates = rates
        self.counter = WindowCounter(store.limits, rates.window_seconds, store.now)

    def admit(self, connection_id: str, source_ip: str | None) -> None:
        """`source_ip` is the address's allowance key (ceilings.address_key: IPv6 by /64)."""
        r = self.rates
        if not self.counter.hit(f"conn#{connection_id}", r.connection_messages):
            raise ContractError(
                ErrorCode.RATE_LIMITED,
                f"more than {r.connection_messages} messages in {r.window_seconds} s on this connection; "
                "slow down and send it again in a few seconds",
            )
        if source_ip is None:
            # Fail closed: without an address no per-address limit could hold (API Gateway
            # always gives one; an event without it is not a client's).
            raise ContractError(ErrorCode.RATE_LIMITED, "the message carries no source address; refused")
        if not self.counter.hit(f"ip#{source_ip}", r.source_messages):
            raise ContractError(
                ErrorCode.RATE_LIMITED,
                f"more than {r.source_messages} messages in {r.window_seconds} s from this address; "
                "send it again in a few seconds",
            )


def source_ip(request_context: dict[str, Any]) -> str | None:
    """The client's address as API Gateway gives it (`requestContext.identity.sourceIp`)."""
    identity = request_context.get("identity")
    ip = identity.get("sourceIp") if isinstance(identity, dict) else None
    return ip if isinstance(ip, str) and 0 < len(ip) <= 64 else None
