"""Scaling policies: the schedule alone, or target tracking on in-flight requests per instance.

`ScalingSettings` and the target tracking constants live in the product (synapscribe.scaling),
which the CDK app deploys, so the simulator and the deployment read the same fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from synapscribe.scaling import (
    METRIC_PERIOD_SECONDS,
    SCALE_IN_DATAPOINTS,
    SCALE_IN_FRACTION,
    SCALE_OUT_DATAPOINTS,
    ScalingSettings,
)

__all__ = ["METRIC_PERIOD_SECONDS", "Floor", "Policy", "ScalingSettings", "TargetTracker", "cron_hour"]


@dataclass(frozen=True)
class Floor:
    """The schedule: `day` instances from `morning_hour` to `night_hour`, `night` otherwise."""

    day: int
    night: int
    morning_hour: int
    night_hour: int

    def at(self, hour: float) -> int:
        h = hour % 24
        if self.morning_hour <= self.night_hour:
            daytime = self.morning_hour <= h < self.night_hour
        else:
            daytime = h >= self.morning_hour or h < self.night_hour
        return self.day if daytime else self.night


@dataclass(frozen=True)
class Policy:
    name: str
    minimum: int
    maximum: int
    floor: Floor
    #: None: the schedule alone sets the group's size.
    scaling: ScalingSettings | None

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum:
            raise ValueError(f"{self.name}: need 0 <= min <= max, got {self.minimum}, {self.maximum}")


def cron_hour(expr: str) -> int:
    """The hour field of a daily cron expression ("0 7 * * 1-5" -> 7)."""
    fields = expr.split()
    if len(fields) != 5 or not re.fullmatch(r"\d{1,2}", fields[1]) or int(fields[1]) > 23:
        raise ValueError(f"cron {expr!r}: need five fields with a single hour (0-23) as the second")
    return int(fields[1])


@dataclass
class TargetTracker:
    """Target tracking's decisions, one call per metric period."""

    settings: ScalingSettings
    last_scale_out: float = -math.inf
    last_activity: float = -math.inf
    _above: int = 0
    _below: int = 0

    def decide(self, now: float, in_flight_total: float, serving: int, desired: int) -> int:
        """The new desired capacity, given the period's average requests in flight on the fleet."""
        target = self.settings.target_in_flight_per_instance
        per_instance = in_flight_total / max(1, serving)
        self._above = self._above + 1 if per_instance > target else 0
        self._below = self._below + 1 if per_instance < target * SCALE_IN_FRACTION else 0
        wanted = math.ceil(in_flight_total / target)
        if (
            self._above >= SCALE_OUT_DATAPOINTS
            and wanted > desired
            and now - self.last_scale_out >= self.settings.scale_out_cooldown_seconds
        ):
            self.last_scale_out = self.last_activity = now
            return wanted
        if (
            self._below >= SCALE_IN_DATAPOINTS
            and wanted < desired
            and now - self.last_activity >= self.settings.scale_in_cooldown_seconds
        ):
            self.last_activity = now
            # One instance at a time: the deployed scale-in is a simple scaling policy of -1 with
            # this cooldown (EC2 Auto Scaling's target tracking cannot hold a scale-in cooldown;
            # cdk/synapscribe_cdk/constructs/fleet_scaling.py).
            return max(wanted, desired - 1)
        return desired
