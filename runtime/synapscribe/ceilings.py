"""The whole service's daily ceilings and each source address's allowances (issue 18).

Guest identities are free to mint, so per-owner quotas (quotas.py) bound one identity, not a
stranger's bill. These counters bound everyone together: bytes uploaded, lectures created and
questions admitted a day, GPU host-hours a day and hosts started from zero a night; and per source
address (an IPv4 address or an IPv6 /64) uploads and their bytes a day and new connections a
minute. Each is one item of the limits table (`limitId` = `day#<date>#<name>`), changed by one
conditional `ADD` that never takes it over its limit, so concurrent Lambdas cannot overshoot; the
item ends (TTL) two days after its day. A refusal raises `ServiceLimit`, before any work is
accepted; a charge whose work is then refused for another reason is given back (`refund`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from synapscribe.platform import Ceilings, PerAddress
from synapscribe.store import TTL_ATTRIBUTE

DAY_SECONDS = 86400
#: A night runs from noon to noon UTC, so one night's warm starts share one counter.
NIGHT_OFFSET_SECONDS = 12 * 3600
#: GPU host-time is counted in seconds (an integer ADD); ceilings are in hours.
GPU_SECONDS = "gpu_host_seconds"
TRY_TOMORROW = "the service has reached today's limit; try again tomorrow"


class ServiceLimit(Exception):
    """A ceiling (or the operator's intake switch) refuses the request; nothing was stored."""

    def __init__(self, ceiling: str, message: str) -> None:
        super().__init__(message)
        self.ceiling = ceiling
        self.message = message


def address_key(source_ip: str | None) -> str | None:
    """The allowance key of a source address: the IPv4 address, or the /64 of an IPv6 one (one
    host is given a whole /64); None when there is none or it is not an address."""
    if not source_ip:
        return None
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def day_of(now: int, offset: int = 0) -> str:
    return datetime.fromtimestamp(now - offset, UTC).strftime("%Y-%m-%d")


@dataclass
class DailyCounters:
    """Day-keyed counters in the limits table."""

    table: Any
    clock: Callable[[], int]

    def _key(self, name: str, day: str) -> dict[str, str]:
        return {"limitId": f"day#{day}#{name}"}

    def add(self, name: str, n: int, limit: int, offset: int = 0) -> bool:
        """Count `n` more of `name` today unless that would pass `limit` (nothing counted then)."""
        if n > limit:
            return False
        now = int(self.clock())
        day = day_of(now, offset)
        try:
            self.table.update_item(
                Key=self._key(name, day),
                UpdateExpression="ADD #n :n SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#n) OR #n <= :room",
                ExpressionAttributeNames={"#n": "n", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":n": n,
                    ":room": limit - n,
                    ":ttl": now - now % DAY_SECONDS + 3 * DAY_SECONDS,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def refund(self, name: str, n: int, offset: int = 0) -> None:
        """Give back `n` counted today (the work was refused after all)."""
        day = day_of(int(self.clock()), offset)
        self.table.update_item(
            Key=self._key(name, day),
            UpdateExpression="ADD #n :minus",
            ConditionExpression="attribute_exists(#n)",
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":minus": -n},
        )

    def accrue(self, name: str, n: int) -> None:
        """Count `n` more today whatever the limit (what has been spent is spent)."""
        now = int(self.clock())
        self.table.update_item(
            Key=self._key(name, day_of(now)),
            UpdateExpression="ADD #n :n SET #ttl = :ttl",
            ExpressionAttributeNames={"#n": "n", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":n": n, ":ttl": now - now % DAY_SECONDS + 3 * DAY_SECONDS},
        )

    def value(self, name: str, offset: int = 0) -> int:
        day = day_of(int(self.clock()), offset)
        item = self.table.get_item(Key=self._key(name, day), ConsistentRead=True).get("Item")
        return int(item["n"]) if item and "n" in item else 0


#: The limits-table item holding when GPU host-time was last accrued.
GPU_MARK = "gpu#accrued"


def accrue_gpu_hosts(table: Any, clock: Callable[[], int], hosts: int, interval: int) -> int:
    """Count `hosts` × the seconds since the last accrual (at most two `interval`s: a run that
    was missed does not guess what ran meanwhile) into today's GPU host-seconds; returns them.
    The mark moves by a conditional write, so two concurrent runs never count one span twice."""
    now = int(clock())
    item = table.get_item(Key={"limitId": GPU_MARK}, ConsistentRead=True).get("Item")
    was = int(item["at"]) if item else None
    span = min(now - was, 2 * interval) if was is not None else interval
    if span <= 0:
        return 0
    try:
        table.update_item(
            Key={"limitId": GPU_MARK},
            UpdateExpression="SET #at = :now",
            ConditionExpression="attribute_not_exists(#at)" if was is None else "#at = :was",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={":now": now, **({":was": was} if was is not None else {})},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return 0  # another run accrued this span
        raise
    seconds = hosts * span
    if seconds:
        DailyCounters(table, clock).accrue(GPU_SECONDS, seconds)
    return seconds


class ServiceCeilings:
    """The checks the edge makes before accepting work; each raises ServiceLimit when refused."""

    def __init__(
        self, table: Any, clock: Callable[[], int], ceilings: Ceilings, per_address: PerAddress
    ) -> None:
        self.counters = DailyCounters(table, clock)
        self.ceilings = ceilings
        self.per_address = per_address

    def admit_lecture_upload(self, address: str, size: int) -> Callable[[], None]:
        """Count one lecture upload of `size` bytes for the service and for `address`; returns
        what gives them back (the owner's quota may still refuse it)."""
        lectures = ("lectures", 1, self.ceilings.daily_lectures, "lectures created today")
        return self._charge([lectures, *self._upload_charges(address, size)])

    def admit_query_upload(self, address: str, size: int) -> Callable[[], None]:
        """A question clip's upload: counted in the address's uploads and bytes and the service's
        bytes, and (a clip is only there to be asked) in as many uploads as questions a day."""
        clips = ("query_uploads", 1, self.ceilings.daily_questions, "question recordings uploaded today")
        return self._charge([clips, *self._upload_charges(address, size)])

    def _upload_charges(self, address: str, size: int) -> list[tuple[str, int, int, str]]:
        """What every upload counts: the service's bytes, and the address's uploads and bytes."""
        a = self.per_address
        return [
            ("upload_bytes", size, self.ceilings.daily_upload_bytes, "bytes uploaded today"),
            (f"addr#{address}#uploads", 1, a.daily_uploads, "uploads from this address today"),
            (
                f"addr#{address}#upload_bytes",
                size,
                a.daily_upload_bytes,
                "bytes uploaded from this address today",
            ),
        ]

    def admit_question(self) -> Callable[[], None]:
        """One question a day more, while the GPU fleet is under its host-hours."""
        self.check_gpu_hours()
        return self._charge([("questions", 1, self.ceilings.daily_questions, "questions answered today")])

    def check_gpu_hours(self) -> None:
        limit = int(self.ceilings.daily_gpu_host_hours * 3600)
        if self.counters.value(GPU_SECONDS) >= limit:
            raise ServiceLimit(
                "daily_gpu_host_hours",
                f"{TRY_TOMORROW} (the answering servers have run their "
                f"{self.ceilings.daily_gpu_host_hours:g} hours for today)",
            )

    def admit_warm_start(self) -> None:
        """One host started from zero tonight (no refund: it was started)."""
        self.check_gpu_hours()
        if not self.counters.add("warm_starts", 1, self.ceilings.nightly_warm_starts, NIGHT_OFFSET_SECONDS):
            raise ServiceLimit(
                "nightly_warm_starts",
                "no answering server is running and tonight's limit of server starts "
                f"({self.ceilings.nightly_warm_starts}) is reached; try again in the morning",
            )

    def _charge(self, charges: list[tuple[str, int, int, str]]) -> Callable[[], None]:
        done: list[tuple[str, int]] = []

        def give_back() -> None:
            for name, n in done:
                self.counters.refund(name, n)

        for name, n, limit, what in charges:
            if not self.counters.add(name, n, limit):
                give_back()
                raise ServiceLimit(name, f"{TRY_TOMORROW} (at most {limit} {what})")
            done.append((name, n))
        return give_back
