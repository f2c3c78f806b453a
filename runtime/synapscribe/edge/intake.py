"""The operator's intake switch: an SSM parameter that closes uploads or questions at once.

`/synapscribe/<env>/intake` holds `{"uploads": "open"|"closed", "questions": "open"|"closed"}`
(created open by the Api stack; the budget action and the operator write it, see
docs/operators-guide.md, "Closing intake"). The handler reads it at most every
`CACHE_SECONDS` per container. A value that does not parse closes both (the operator meant to
close something); a parameter that is absent, or that SSM cannot serve now, leaves the last value
read (open when none was), so an SSM outage does not close the service.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from synapscribe.ceilings import ServiceLimit

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
PARAMETER_NAME = "/synapscribe/{env}/intake"
Door = Literal["uploads", "questions"]
OPEN: dict[str, str] = {"uploads": "open", "questions": "open"}
CLOSED: dict[str, str] = {"uploads": "closed", "questions": "closed"}


def parameter_name(env: str) -> str:
    return PARAMETER_NAME.format(env=env)


def parse_value(value: str) -> dict[str, str]:
    """The switch's state; CLOSED when the value is not the documented JSON."""
    try:
        data = json.loads(value)
    except ValueError:
        return dict(CLOSED)
    if not isinstance(data, dict) or set(data) != set(OPEN):
        return dict(CLOSED)
    if any(v not in ("open", "closed") for v in data.values()):
        return dict(CLOSED)
    return {str(k): str(v) for k, v in data.items()}


class IntakeSwitch:
    """Reads the parameter through `ssm` (a boto3 SSM client), cached for `cache_seconds`."""

    def __init__(
        self,
        ssm: Any,
        name: str,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.ssm = ssm
        self.name = name
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._state: dict[str, str] = dict(OPEN)
        self._read_at: float | None = None

    def state(self) -> dict[str, str]:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.cache_seconds:
            self._read_at = now
            try:
                value = self.ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
            except (ClientError, BotoCoreError) as exc:
                log.warning("intake switch %s unreadable (%s); keeping %s", self.name, exc, self._state)
            else:
                self._state = parse_value(value)
        return self._state

    def require_open(self, door: Door) -> None:
        if self.state().get(door) != "open":
            raise ServiceLimit(
                f"intake.{door}",
                f"the service is not taking new {door} right now (closed by its operator); try again later",
            )
