"""`synapscribe capacity --worst-case --env E`: the month's worst-case bill under an environment's
ceilings (issue 18), line by line with its arithmetic.

Every line is what strangers could make us pay in a 30-day month if they used every allowance
every day: the service's daily ceilings (cdk.json `ceilings`), the stage's throttle (every
message, connection and Lambda invocation passes it), the fleet's schedule and size. Prices are
list prices from capacity_prices.yaml (`worst_case`), and the few figures that are behaviour,
not price (how often an answer link is fetched, how long the handler runs), are named there as
assumptions. Storage is the steady state: `retention_days` of daily uploads kept at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError
from synapscribe.platform import Ceilings, PerAddress, PlatformConfig

DAYS = 30
SECONDS = DAYS * 86400
GB = 1e9
#: API Gateway closes a WebSocket connection idle for 10 minutes (API Gateway quotas).
IDLE_SECONDS = 600


class WorstCasePrices(BaseModel):
    """capacity_prices.yaml `worst_case`: list prices (USD) and the assumptions, each named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    read_on: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    s3_storage_usd_per_gb_month: PositiveFloat
    s3_put_post_usd_per_1000: PositiveFloat
    s3_get_usd_per_1000: PositiveFloat
    egress_usd_per_gb: PositiveFloat
    lambda_usd_per_million_requests: PositiveFloat
    lambda_usd_per_gb_second: PositiveFloat
    websocket_usd_per_million_messages: PositiveFloat
    websocket_usd_per_million_connection_minutes: PositiveFloat
    dynamodb_usd_per_million_writes: PositiveFloat
    dynamodb_usd_per_million_reads: PositiveFloat
    # Assumptions (behaviour, not price):
    answer_audio_bytes: PositiveInt
    answer_audio_parts: PositiveInt
    fetches_per_answer_link: PositiveInt
    posts_per_upload_policy: PositiveInt
    handler_ms_per_message: PositiveFloat
    validator_seconds_per_post: PositiveFloat
    table_writes_per_message: PositiveInt
    table_reads_per_message: PositiveInt


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Throttle(_Read):
    rate_limit: float = Field(gt=0)


class _Capacity(_Read):
    min: int = Field(ge=0)
    max: int = Field(ge=1)
    desired: int = Field(ge=0)
    night_scale_in_cron: str | None = None
    morning_scale_out_cron: str | None = None


class _Scaling(_Read):
    scale_in_cooldown_seconds: int = Field(ge=0)


class EnvironmentCeilings(_Read):
    """What the worst case reads of one cdk.json environment."""

    name: str
    throttle: _Throttle
    ceilings: Ceilings
    per_address: PerAddress
    capacity: _Capacity
    scaling: _Scaling | None = None
    instance_types: list[str] = Field(min_length=1)
    lambda_memory_mib: int = 512


class WorstCaseError(ValueError):
    """cdk.json or the price table cannot give a worst case."""


def load_environment(cdk_json: Path, env: str) -> EnvironmentCeilings:
    try:
        environments = json.loads(cdk_json.read_text(encoding="utf-8"))["context"]["synapscribe:environments"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorstCaseError(f"cannot read the environments from {cdk_json}: {exc}") from None
    if env not in environments:
        raise WorstCaseError(
            f"no environment {env!r} in {cdk_json} (it has {', '.join(sorted(environments))})"
        )
    raw = environments[env]
    try:
        return EnvironmentCeilings(name=env, **raw)
    except ValidationError as exc:
        raise WorstCaseError(f"{cdk_json}: {env}: {exc}") from None


@dataclass(frozen=True)
class Line:
    item: str
    usd: float
    arithmetic: str


@dataclass(frozen=True)
class WorstCase:
    env: str
    lines: list[Line]

    @property
    def total_usd(self) -> float:
        return sum(line.usd for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "totalUsd": round(self.total_usd, 2),
            "lines": [
                {"item": x.item, "usd": round(x.usd, 2), "arithmetic": x.arithmetic} for x in self.lines
            ],
        }


def _cron_hour(cron: str | None) -> int | None:
    if cron is None:
        return None
    hour = cron.split()[1]
    return int(hour) if hour.isdigit() else None


def scheduled_host_hours(capacity: _Capacity) -> float:
    """Host-hours a day the schedule alone keeps: `desired` from the morning action to the
    night action (every day, weekends too: an upper bound), `min` the rest of the day."""
    morning, night = _cron_hour(capacity.morning_scale_out_cron), _cron_hour(capacity.night_scale_in_cron)
    if morning is None or night is None:
        return 24.0 * capacity.desired
    day = (night - morning) % 24
    return day * capacity.desired + (24 - day) * capacity.min


def worst_case(
    env: EnvironmentCeilings, prices: WorstCasePrices, gpu_usd_per_hour: float, platform: PlatformConfig
) -> WorstCase:
    """Each line of the month's worst case (see the module's docstring)."""
    c, p = env.ceilings, prices
    retention, ephemeral = platform.storage.retention_days, platform.storage.ephemeral_days
    uploads_a_day = c.daily_lectures + c.daily_questions  # a question clip counts as a question
    messages = env.throttle.rate_limit * SECONDS
    answers_gb_a_day = c.daily_questions * p.answer_audio_bytes / GB
    lines = [
        Line(
            "storage",
            (stored := c.daily_upload_bytes / GB * retention + answers_gb_a_day * ephemeral)
            * p.s3_storage_usd_per_gb_month,
            f"({c.daily_upload_bytes / GB:g} GB uploaded a day x {retention} days kept + "
            f"{answers_gb_a_day:g} GB of answers a day x {ephemeral} days) = {stored:,.1f} GB x "
            f"${p.s3_storage_usd_per_gb_month}/GB-month",
        ),
        _requests(c, p, uploads_a_day),
        Line(
            "egress",
            (egress := answers_gb_a_day * p.fetches_per_answer_link * DAYS) * p.egress_usd_per_gb,
            f"{c.daily_questions} answers a day x {p.answer_audio_bytes / 1e6:g} MB x "
            f"{p.fetches_per_answer_link} fetches of each 5-minute link (assumed) x {DAYS} days = "
            f"{egress:,.1f} GB x ${p.egress_usd_per_gb}/GB",
        ),
        _lambda(env, p, messages),
        _api_gateway(env, p, messages),
        Line(
            "DynamoDB",
            (writes := messages * p.table_writes_per_message) / 1e6 * p.dynamodb_usd_per_million_writes
            + (reads := messages * p.table_reads_per_message) / 1e6 * p.dynamodb_usd_per_million_reads,
            f"{messages / 1e6:,.1f} M messages (the stage throttle) x {p.table_writes_per_message} writes "
            f"= {writes / 1e6:,.1f} M x ${p.dynamodb_usd_per_million_writes}/M + x {p.table_reads_per_message} "
            f"reads = {reads / 1e6:,.1f} M x ${p.dynamodb_usd_per_million_reads}/M",
        ),
        _gpu(env, gpu_usd_per_hour, platform),
    ]
    return WorstCase(env.name, lines)


def _requests(c: Ceilings, p: WorstCasePrices, uploads_a_day: int) -> Line:
    posts = uploads_a_day * p.posts_per_upload_policy * DAYS
    gets = c.daily_questions * p.answer_audio_parts * p.fetches_per_answer_link * DAYS
    usd = posts / 1000 * p.s3_put_post_usd_per_1000 + gets / 1000 * p.s3_get_usd_per_1000
    return Line(
        "requests",
        usd,
        f"{uploads_a_day} uploads a day x {p.posts_per_upload_policy} POSTs of each 60-second policy "
        f"(assumed) x {DAYS} days = {posts / 1e6:,.2f} M x ${p.s3_put_post_usd_per_1000}/1000 + "
        f"{c.daily_questions} answers x {p.answer_audio_parts} parts x {p.fetches_per_answer_link} fetches "
        f"x {DAYS} days = {gets / 1e6:,.2f} M GETs x ${p.s3_get_usd_per_1000}/1000",
    )


def _lambda(env: EnvironmentCeilings, p: WorstCasePrices, messages: float) -> Line:
    gb = env.lambda_memory_mib / 1024
    # S3 notifies the validator of objects under lectures/ only: every POST of a lecture policy.
    validations = env.ceilings.daily_lectures * p.posts_per_upload_policy * DAYS
    gb_seconds = (
        messages * p.handler_ms_per_message / 1000 * gb + validations * p.validator_seconds_per_post * gb
    )
    invocations = messages + validations
    usd = invocations / 1e6 * p.lambda_usd_per_million_requests + gb_seconds * p.lambda_usd_per_gb_second
    return Line(
        "Lambda",
        usd,
        f"({messages / 1e6:,.1f} M handler runs x {p.handler_ms_per_message:g} ms + {validations / 1e6:,.2f} M "
        f"validations x {p.validator_seconds_per_post:g} s) x {gb:g} GB = {gb_seconds:,.0f} GB-s x "
        f"${p.lambda_usd_per_gb_second}/GB-s + {invocations / 1e6:,.1f} M requests x "
        f"${p.lambda_usd_per_million_requests}/M",
    )


def _api_gateway(env: EnvironmentCeilings, p: WorstCasePrices, messages: float) -> Line:
    # Each live connection costs a message every 10 minutes to stay open, out of the same throttle.
    connections = env.throttle.rate_limit * IDLE_SECONDS
    minutes = connections * SECONDS / 60
    usd = messages / 1e6 * p.websocket_usd_per_million_messages
    usd += minutes / 1e6 * p.websocket_usd_per_million_connection_minutes
    return Line(
        "API Gateway",
        usd,
        f"{env.throttle.rate_limit:g} messages/s (stage throttle) x {SECONDS:,} s = {messages / 1e6:,.1f} M x "
        f"${p.websocket_usd_per_million_messages}/M + {connections:,.0f} connections kept open "
        f"({env.throttle.rate_limit:g}/s x {IDLE_SECONDS} s idle timeout) x {SECONDS // 60:,} min = "
        f"{minutes / 1e6:,.0f} M connection-minutes x ${p.websocket_usd_per_million_connection_minutes}/M",
    )


def _gpu(env: EnvironmentCeilings, usd_per_hour: float, platform: PlatformConfig) -> Line:
    """The ceiling stops admitting questions and warm starts, not the hosts already running: after
    it, hosts stay for one sweeper interval (accrual lag) and the scale-in cooldown at most; the
    schedule's own hosts run whatever the ceiling."""
    schedule = scheduled_host_hours(env.capacity)
    cooldown = env.scaling.scale_in_cooldown_seconds if env.scaling else 0
    tail = env.capacity.max * (platform.sweeper.interval_seconds + cooldown) / 3600
    per_day = max(env.ceilings.daily_gpu_host_hours, schedule) + tail
    return Line(
        "GPU",
        per_day * DAYS * usd_per_hour,
        f"(max({env.ceilings.daily_gpu_host_hours:g} h ceiling, {schedule:g} h scheduled) + {env.capacity.max} "
        f"hosts x ({platform.sweeper.interval_seconds} s sweep + {cooldown} s scale-in cooldown) = "
        f"{per_day:,.2f} host-hours a day) x {DAYS} days x ${usd_per_hour}/h ({env.instance_types[0]} spot)",
    )


def render(case: WorstCase) -> str:
    width = max(len(line.item) for line in case.lines)
    rows = [f"Worst-case month for {case.env} (30 days, every ceiling used every day)"]
    rows += [f"  {line.item:<{width}}  ${line.usd:>10,.2f}   {line.arithmetic}" for line in case.lines]
    rows.append(f"  {'total':<{width}}  ${case.total_usd:>10,.2f}")
    return "\n".join(rows)
