"""The Lambda handlers' environment and the AWS clients they share (built once per cold start)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.config import Config
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synapscribe.ceilings import ServiceCeilings
from synapscribe.connections import ConnectionPusher
from synapscribe.edge.intake import CACHE_SECONDS, IntakeSwitch
from synapscribe.platform import Ceilings, PerAddress, PlatformConfig, Rates, load_platform
from synapscribe.quotas import OwnerQuotas
from synapscribe.settings import AwsResources, load_settings
from synapscribe.store import Store


class EdgeSettings(BaseSettings):
    """SYNAPSCRIBE_* variables of both handlers (the bucket and tables are in AwsResources)."""

    model_config = SettingsConfigDict(env_prefix="SYNAPSCRIBE_", extra="ignore", frozen=True)

    #: AgentCore behind its load balancer, e.g. http://10.0.1.5:5000 or http://127.0.0.1:PORT.
    agentcore_url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    #: The @connections endpoint; derived from the event's domainName/stage when unset.
    connections_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    #: Where a connection's owner comes from: `cognito` (deployed, IAM-authorized $connect) or
    #: `query` (the local stack's `identity` query parameter). Never `query` when deployed.
    identity_source: Literal["cognito", "query"] = "cognito"
    #: The handlers hand work to AgentCore and return; they never wait for an answer.
    agentcore_timeout_seconds: float = Field(default=3.0, gt=0, le=10)
    #: Override platform.yaml's rates.connection_messages / rates.source_messages (the local
    #: stack's fuzz tests send a thousand messages on one connection to test the contract).
    rate_connection_messages: int | None = Field(default=None, gt=0)
    rate_source_messages: int | None = Field(default=None, gt=0)
    #: Override quotas.jobs_in_flight / quotas.questions_per_minute for this process: a benchmark
    #: of concurrent sessions on the local stack asks as one identity.
    quota_jobs_in_flight: int | None = Field(default=None, gt=0)
    quota_questions_per_minute: int | None = Field(default=None, gt=0)
    #: The GPU fleet's Auto Scaling group: when AgentCore cannot be reached (no healthy host), the
    #: handler starts one in it and parks the question (edge/warming.py). Unset: no warming.
    fleet_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,255}$")
    #: The service's daily ceilings and per-address allowances (JSON, cdk.json's `ceilings` and
    #: `per_address`); unset: platform.yaml's (the local stack's).
    ceilings: Ceilings | None = None
    per_address: PerAddress | None = None
    #: The intake switch's SSM parameter (edge/intake.py); unset: intake is always open.
    intake_parameter: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9/_.-]{1,1000}$")
    #: How long a container trusts the switch it read (a test of the local stack shortens it).
    intake_cache_seconds: float = Field(default=CACHE_SECONDS, ge=0, le=300)


def s3_client(region: str | None = None) -> Any:
    """An S3 client whose presigned POST URLs work: path style against a custom endpoint
    (moto on loopback), virtual-hosted regional URLs against AWS."""
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client(
        "s3",
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if custom else "virtual"},
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


@dataclass
class EdgeDeps:
    """Everything a handler talks to; tests and the local stack may build their own."""

    settings: EdgeSettings
    resources: AwsResources
    platform: PlatformConfig
    store: Store
    s3: Any
    pushers: dict[str, ConnectionPusher] = field(default_factory=dict)
    #: The Auto Scaling client (built on first use: only a question with no healthy host needs it).
    autoscaling: Any | None = None
    #: The intake switch (built on first use, with its own cache).
    intake_switch: IntakeSwitch | None = None

    @property
    def ceilings(self) -> ServiceCeilings:
        """The service's ceilings: the settings' (cdk.json), else platform.yaml's."""
        return ServiceCeilings(
            self.store.limits,
            self.store.now,
            self.settings.ceilings or self.platform.ceilings,
            self.settings.per_address or self.platform.per_address,
        )

    def require_intake_open(self, door: Literal["uploads", "questions"]) -> None:
        """ServiceLimit when the operator closed `door` (no parameter configured: always open)."""
        name = self.settings.intake_parameter
        if name is None:
            return
        if self.intake_switch is None:
            self.intake_switch = IntakeSwitch(
                boto3.client(
                    "ssm", config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2})
                ),
                name,
                cache_seconds=self.settings.intake_cache_seconds,
            )
        self.intake_switch.require_open(door)

    def autoscaling_client(self) -> Any:
        if self.autoscaling is None:
            self.autoscaling = boto3.client(
                "autoscaling", config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})
            )
        return self.autoscaling

    @property
    def quotas(self) -> OwnerQuotas:
        """The owner quotas: platform.yaml's, with the settings' overrides."""
        overrides = {
            name: value
            for name, value in (
                ("jobs_in_flight", self.settings.quota_jobs_in_flight),
                ("questions_per_minute", self.settings.quota_questions_per_minute),
            )
            if value is not None
        }
        platform = self.platform
        if overrides:
            platform = platform.model_copy(update={"quotas": platform.quotas.model_copy(update=overrides)})
        return OwnerQuotas(self.store, platform)

    @property
    def rates(self) -> Rates:
        """platform.yaml's message rates, with the settings' overrides."""
        rates = self.platform.rates
        conn = self.settings.rate_connection_messages or rates.connection_messages
        source = max(self.settings.rate_source_messages or rates.source_messages, conn)
        return rates.model_copy(update={"connection_messages": conn, "source_messages": source})

    def pusher(self, endpoint_url: str) -> ConnectionPusher:
        if endpoint_url not in self.pushers:
            self.pushers[endpoint_url] = ConnectionPusher(endpoint_url)
        return self.pushers[endpoint_url]


def build_deps(platform: PlatformConfig | None = None) -> EdgeDeps:
    """Read and validate the environment (SettingsError names the bad variable)."""
    settings = load_settings(EdgeSettings)
    resources = load_settings(AwsResources)
    platform = platform or load_platform()
    return EdgeDeps(
        settings=settings,
        resources=resources,
        platform=platform,
        store=Store(resources, platform),
        s3=s3_client(),
    )


class CachedDeps:
    """A handler's clients, built on the first invocation of a (cold) Lambda container and reused.

    deps = CachedDeps(); deps() builds or returns them; deps.reset() forgets them (tests; the local
    stack after changing the environment)."""

    def __init__(self) -> None:
        self._deps: EdgeDeps | None = None

    def __call__(self) -> EdgeDeps:
        if self._deps is None:
            self._deps = build_deps()
        return self._deps

    def reset(self) -> None:
        self._deps = None
