"""Per-environment deployment settings, read from the CDK context and validated in one place.

`cdk.json` holds `synapscribe:environments` (one block per environment, dev and prod) and
`env` (which one to build, overridable with `-c env=prod`). Ports, the model and limits are NOT
here: they come from the runtime's shared configuration (`synapscribe.platform.load_platform()`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from synapscribe.contract import ACTIONS
from synapscribe.platform import Ceilings, PerAddress, load_platform
from synapscribe.scaling import ScalingSettings

ENVIRONMENTS_KEY = "synapscribe:environments"
ENV_KEY = "env"
#: `-c zones=eu-west-1a,eu-west-1b`: the zones of this deploy, over cdk.json's `availability_zones`
#: (what `synapscribe preflight` prints when the configured zones do not fit the account).
ZONES_KEY = "zones"

#: Instance types with one 24 GB GPU that the AMI's driver supports (A10G: g5, L4: g6, g6f is
#: fractional and excluded). The fleet may use any of these; the first listed is preferred.
GPU_24GB_INSTANCE_TYPES = frozenset(
    {
        "g5.xlarge",
        "g5.2xlarge",
        "g5.4xlarge",
        "g5.8xlarge",
        "g5.16xlarge",
        "g6.xlarge",
        "g6.2xlarge",
        "g6.4xlarge",
        "g6.8xlarge",
        "g6.16xlarge",
    }
)

#: CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

_CRON = r"^\S+ \S+ \S+ \S+ \S+$"
#: A region's availability zone is the region's name and one letter (eu-west-1a). Local and
#: Wavelength zones (us-west-2-lax-1a) are not availability zones and offer no GPU fleet.
_ZONE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d[a-z]")
_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


def _distinct_zones(value: list[str]) -> list[str]:
    bad = [z for z in value if not _ZONE.fullmatch(z)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not an availability zone name (e.g. eu-west-1a)")
    if len(value) < 2 or len(set(value)) != len(value):
        raise ValueError("list at least two distinct zones")
    return value


#: Two or more distinct zone names of one region.
ZoneList = Annotated[list[str], AfterValidator(_distinct_zones)]
RegionName = Annotated[str, Field(pattern=_REGION)]


def parse_zones(value: Any) -> list[str]:
    """The `-c zones=` context value: `eu-west-1a,eu-west-1b` (the CLI gives a string) or a list."""
    if isinstance(value, str):
        value = [z.strip() for z in value.split(",") if z.strip()]
    if not isinstance(value, list) or not all(isinstance(z, str) for z in value):
        raise ConfigError(f"context {ZONES_KEY!r} must name zones like eu-west-1a,eu-west-1b, got {value!r}")
    try:
        return _distinct_zones(value)
    except ValueError as exc:
        raise ConfigError(f"context {ZONES_KEY!r}: {exc}") from None


class ConfigError(ValueError):
    """The CDK context does not describe a valid environment."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capacity(_Strict):
    """The GPU fleet's size. `night_*` schedules (cron, in `time_zone`) scale it to zero and back."""

    min: int = Field(ge=0, le=100)
    max: int = Field(ge=1, le=100)
    desired: int = Field(ge=0, le=100)
    night_scale_in_cron: str | None = Field(default=None, pattern=_CRON)
    morning_scale_out_cron: str | None = Field(default=None, pattern=_CRON)
    time_zone: str = Field(default="UTC", min_length=1)
    #: The group's maximum from the night action to the morning's: a cost ceiling, so questions
    #: at night (warming from zero, load scaling) keep at most this many hosts up; the morning
    #: action restores `max`.
    night_max: int = Field(default=1, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if not self.min <= self.desired <= self.max:
            raise ValueError(f"need min <= desired <= max, got {self.min}, {self.desired}, {self.max}")
        if self.night_max > self.max:
            raise ValueError(f"night_max ({self.night_max}) must not exceed max ({self.max})")
        if (self.night_scale_in_cron is None) != (self.morning_scale_out_cron is None):
            raise ValueError("night_scale_in_cron and morning_scale_out_cron go together")
        return self


class Throttle(_Strict):
    rate_limit: float = Field(gt=0, le=10000)
    burst_limit: int = Field(gt=0, le=5000)


class ReservedConcurrency(_Strict):
    """Reserved concurrency: a cap on the validation Lambda (a flood of uploads cannot exhaust the
    account's concurrency) and a floor for the WebSocket handler (other functions of the account
    cannot starve the students). AWS keeps 100 of the account's concurrency unreserved, so an
    account at the default limit of 10 cannot reserve any (preflight checks the account limit)."""

    validation: int = Field(ge=1, le=1000)
    websocket_handler: int = Field(ge=1, le=3000)


class CostAlarms(_Strict):
    """Thresholds of the alarms that tell an operator strangers are costing more than students do:
    the lecture bucket's size (S3's daily BucketSizeBytes), the WebSocket API's messages and the
    edge functions' invocations per hour."""

    bucket_gib: int = Field(ge=1, le=100_000)
    messages_per_hour: int = Field(ge=1)
    invocations_per_hour: int = Field(ge=1)


class EnvironmentConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,15}$")
    #: `retain` keeps the bucket and tables when the stack is deleted (production data).
    removal: Literal["destroy", "retain"]
    #: Origins allowed to POST uploads to the bucket from a browser.
    cors_allowed_origins: list[str] = Field(min_length=1)
    vpc_cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$")
    max_azs: int = Field(ge=2, le=4)
    #: The zones of the VPC and so of the GPU fleet's subnets, never looked up (synth stays
    #: offline): a map of region to zones (`{"eu-west-1": ["eu-west-1a", "eu-west-1b"]}`), or one
    #: list for the only region this environment is deployed to. `-c zones=` overrides it; a region
    #: not listed gets `<region>a`, `<region>b`, … (`max_azs` of them). Zone letters map to
    #: different physical zones in each account: `synapscribe preflight` names the zones that
    #: offer every instance type in yours, and the setting to use.
    availability_zones: ZoneList | dict[RegionName, ZoneList] | None = None
    stage_name: str = Field(default="prod", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    throttle: Throttle
    #: Lower limits for the routes that cost the most (presigned uploads, GPU questions), by route
    #: key (a contract action); the stage throttle above applies to every other route.
    route_throttles: dict[str, Throttle] = Field(default_factory=dict)
    reserved_concurrency: ReservedConcurrency
    log_retention_days: int
    instance_types: list[str] = Field(min_length=1)
    root_volume_gib: int = Field(ge=60, le=2000)
    #: EBS Provisioned Rate for Volume Initialization of the root volume, in MiB/s: the AMI's
    #: snapshot (model weights included) is restored at this rate instead of lazily on first read.
    #: AWS accepts 100-300 MiB/s (Amazon EBS User Guide, "Initialize Amazon EBS volumes"; the
    #: CloudFormation property AWS::EC2::LaunchTemplate Ebs VolumeInitializationRate) and bills
    #: per GiB of snapshot data times the rate, once per launch. None: the default, lazy restore.
    #: Chosen with `synapscribe capacity cold-start` (docs/operators-guide.md, "Cold start").
    root_volume_initialization_mib_per_second: int | None = Field(default=None, ge=100, le=300)
    capacity: Capacity
    #: How long a terminating instance keeps finishing its in-flight answers (spot gives 120 s).
    drain_seconds: int = Field(ge=10, le=900)
    #: The NAT instance that gives the Lambdas' subnets egress to @connections (see stacks/network.py).
    nat_instance_type: str = Field(default="t4g.nano", pattern=r"^[a-z][a-z0-9]*\.[a-z0-9]+$")
    #: How the private subnets reach the internet (@connections, gTTS, SSM, logs). `nat_instance`:
    #: the NAT instance above, in an Auto Scaling group of one that replaces it when it fails (a
    #: few dollars a month; one small box carries everything, minutes of outage while it is
    #: replaced: for dev). `nat_gateway`: a managed NAT gateway per zone (list price about
    #: $0.045-0.048 an hour each plus as much per GB, by region; no instance to look after, no
    #: single zone or box: for prod).
    egress: Literal["nat_instance", "nat_gateway"] = "nat_instance"
    #: Subscribed (by email) to the alarm topic, which every alarm, the budget and its action
    #: notify. Required in production (`removal: retain`): synth refuses a production environment
    #: nobody hears. `synapscribe preflight` fails until the address has confirmed the mail.
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    #: The AWS Budget of the environment (monthly cost of everything tagged with its name): 80 %
    #: forecast warns the alarm topic, 100 % actual closes intake and the GPU fleet
    #: (constructs/cost_guard.py; the operator's guide, "Cost ceilings and alarms").
    monthly_budget_usd: int = Field(ge=1, le=1_000_000)
    cost_alarms: CostAlarms
    #: Let operators open shells on GPU instances through Session Manager (no SSH, no open port).
    session_manager: bool = True
    lambda_memory_mib: int = Field(default=512, ge=128, le=10240)
    validation_timeout_seconds: int = Field(default=300, ge=10, le=900)
    #: S3 invokes the validator asynchronously: Lambda retries a failed run this often and drops an
    #: event older than this (then it goes to the on-failure queue, which alarms).
    validation_retry_attempts: int = Field(default=2, ge=0, le=2)
    validation_max_event_age_seconds: int = Field(default=3600, ge=60, le=21600)
    #: The whole service's daily ceilings and one address's allowances (ceilings.py), given to the
    #: WebSocket handler and sweeper; `synapscribe capacity --worst-case` prices them.
    ceilings: Ceilings
    per_address: PerAddress
    #: Target tracking on in-flight requests per instance, chosen with `synapscribe simulate --choose`
    #: (docs/operators-guide.md); None: the schedule alone sizes the fleet.
    scaling: ScalingSettings | None = None

    def route_throttles_with_default(self) -> dict[str, Throttle]:
        """`route_throttles` and `$default` at the busiest of them (none listed: the stage's)."""
        busiest = max(
            self.route_throttles.values(), key=lambda t: (t.rate_limit, t.burst_limit), default=None
        )
        return {**self.route_throttles, **({"$default": busiest} if busiest is not None else {})}

    @property
    def production(self) -> bool:
        """Production keeps its data (`removal: retain`), as preflight reads it."""
        return self.removal == "retain"

    @model_validator(mode="after")
    def _production_is_heard(self) -> EnvironmentConfig:
        if self.production and self.alarm_email is None:
            raise ValueError(
                "alarm_email: a production environment (removal: retain) needs an address that hears "
                "its alarms and budget; set alarm_email in cdk.json"
            )
        return self

    def configured_zones(self, region: str) -> list[str] | None:
        """The zones listed for `region` (None: the default letters apply)."""
        zones = self.availability_zones
        if isinstance(zones, dict):
            return list(zones[region]) if region in zones else None
        return list(zones) if zones is not None else None

    @property
    def fleet_group_name(self) -> str:
        """The GPU fleet's Auto Scaling group name, fixed per environment: the WebSocket handler
        (Api stack, deployed before Compute) starts the group by this name, and AgentCore tags its
        metrics with it for the group's target-tracking policy."""
        return f"SynapScribe-{self.name}-gpu-fleet"

    def zones_in(self, region: str) -> list[str]:
        zones = self.configured_zones(region)
        if zones is None:
            return [f"{region}{letter}" for letter in "abcd"[: self.max_azs]]
        outside = [z for z in zones if z[:-1] != region]
        if outside:
            raise ConfigError(f"availability zones {', '.join(outside)} are not in {region}")
        return zones

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("https://", "http://localhost")):
                raise ValueError(f"origin {origin!r} must be https://… (or http://localhost…, or *)")
        return value

    @field_validator("route_throttles")
    @classmethod
    def _routes(cls, value: dict[str, Throttle]) -> dict[str, Throttle]:
        unknown = sorted(set(value) - set(ACTIONS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a route (one of {', '.join(ACTIONS)})")
        return value

    @model_validator(mode="after")
    def _routes_below_stage(self) -> EnvironmentConfig:
        for route, limits in self.route_throttles.items():
            if limits.rate_limit > self.throttle.rate_limit or limits.burst_limit > self.throttle.burst_limit:
                raise ValueError(f"route_throttles.{route} must not exceed the stage throttle")
        return self

    @model_validator(mode="after")
    def _scale_out_waits_for_a_new_host(self) -> EnvironmentConfig:
        # A scale-out before the previous one's host serves would answer the same demand twice:
        # the cooldown covers the expected start-up, platform.yaml's fleet.host_startup_seconds.
        startup = load_platform().fleet.host_startup_seconds
        if self.scaling is not None and self.scaling.scale_out_cooldown_seconds < startup:
            raise ValueError(
                f"scaling.scale_out_cooldown_seconds ({self.scaling.scale_out_cooldown_seconds}) is below "
                f"platform.yaml's fleet.host_startup_seconds ({startup}): a new host would not serve yet"
            )
        return self

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"{value} is not a CloudWatch Logs retention period")
        return value

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in GPU_24GB_INSTANCE_TYPES]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a single-24-GB-GPU instance type")
        if len(set(value)) != len(value):
            raise ValueError("instance types repeat")
        return value


def load_environment(context: Any, env_name: Any, zones: Any = None) -> EnvironmentConfig:
    """The environment `env_name` from the context mapping `synapscribe:environments`; `zones`
    (the `-c zones=` context value), when given, replaces its `availability_zones`."""
    if not isinstance(context, dict) or not context:
        raise ConfigError(f"context {ENVIRONMENTS_KEY!r} must be a mapping of environment name to settings")
    if not isinstance(env_name, str) or env_name not in context:
        raise ConfigError(
            f"context {ENV_KEY!r} is {env_name!r}; expected one of {', '.join(sorted(context))}"
        )
    raw = context[env_name]
    if not isinstance(raw, dict):
        raise ConfigError(f"{ENVIRONMENTS_KEY}.{env_name} must be a mapping")
    if zones is not None:
        raw = {**raw, "availability_zones": parse_zones(zones)}
    try:
        return EnvironmentConfig(name=env_name, **raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{ENVIRONMENTS_KEY}.{env_name}: {problems}") from None


IMAGE_PIPELINE_KEY = "synapscribe:image_pipeline"


class ImagePipelineConfig(_Strict):
    """The account's image pipeline (stacks/image_pipeline.py): where CodeBuild checks out this
    repository, when it runs, and the small isolated network of the verify instance."""

    github_owner: str = Field(pattern=r"^[A-Za-z0-9-]{1,39}$")
    github_repo: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")
    branch: str = Field(default="main", min_length=1)
    #: An EventBridge schedule expression (UTC).
    schedule: str = Field(pattern=r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
    vpc_cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-6])$")
    log_retention_days: int = 30
    #: Subscribed to the pipeline's failure topic when set.
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs keeps logs for one of {sorted(LOG_RETENTION_DAYS)} days")
        return value


def load_image_pipeline(context: Any) -> ImagePipelineConfig:
    if not isinstance(context, dict):
        raise ConfigError(f"context {IMAGE_PIPELINE_KEY!r} must be a mapping")
    try:
        return ImagePipelineConfig(**context)
    except ValidationError as exc:
        raise ConfigError(f"{IMAGE_PIPELINE_KEY}: {exc}") from None
