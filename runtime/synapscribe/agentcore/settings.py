"""AgentCore's environment, validated at start-up (a wrong value names its variable)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synapscribe.platform import PlatformConfig, PlatformConfigError, load_platform
from synapscribe.settings import SettingsError

_URL = r"^https?://[^\s/]+(/\S*)?$"
#: The metrics log group's variable: the deploy environment carries this environment's name
#: (platform.yaml fleet.log_groups.metrics for it), written by the launch template's user data.
EMF_LOG_GROUP_VARIABLE = "SYNAPSCRIBE_EMF_LOG_GROUP"


class AgentCoreSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    vllm_base_url: str = Field(validation_alias="VLLM_BASE_URL", pattern=_URL)
    vllm_model: str = Field(
        default_factory=lambda: load_platform().model.served_name,
        validation_alias="VLLM_MODEL",
        min_length=1,
        max_length=200,
    )
    vllm_api_key: str | None = Field(default=None, validation_alias="VLLM_API_KEY")
    tts_url: str = Field(validation_alias="SYNAPSCRIBE_TTS_URL", pattern=_URL)
    connections_endpoint: str = Field(validation_alias="SYNAPSCRIBE_CONNECTIONS_ENDPOINT", pattern=_URL)
    # Overrides of platform.yaml (operators and tests); unset means the platform's value.
    max_model_len: int | None = Field(default=None, validation_alias="SYNAPSCRIBE_MAX_MODEL_LEN", ge=1)
    max_num_seqs: int | None = Field(default=None, validation_alias="SYNAPSCRIBE_MAX_NUM_SEQS", ge=1, le=1024)
    queue_timeout_seconds: float | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_QUEUE_TIMEOUT_SECONDS", gt=0, le=600
    )
    upstream_timeout_seconds: float | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_UPSTREAM_TIMEOUT_SECONDS", gt=0, le=600
    )
    drain_timeout_seconds: float | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_DRAIN_TIMEOUT_SECONDS", gt=0, le=600
    )
    #: The CloudWatch agent's EMF listener (udp://127.0.0.1:25888 on a host); unset: EMF is logged.
    emf_endpoint: str | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_EMF_ENDPOINT", pattern=r"^udp://[A-Za-z0-9.-]+:\d{1,5}$"
    )
    #: The log group the agent writes the EMF documents to (fleet.log_groups.metrics of this environment).
    emf_log_group: str | None = Field(
        default=None, validation_alias=EMF_LOG_GROUP_VARIABLE, pattern=r"^/[A-Za-z0-9/_.-]{1,511}$"
    )
    metrics_interval_seconds: float = Field(
        default=60.0, validation_alias="SYNAPSCRIBE_METRICS_INTERVAL_SECONDS", ge=1, le=3600
    )
    #: The metrics' InstanceId dimension (the unit sets it from IMDS); default: the host name.
    instance_id: str | None = Field(default=None, validation_alias="SYNAPSCRIBE_INSTANCE_ID", min_length=1)
    #: The Auto Scaling group this host belongs to: the metrics' AutoScalingGroupName roll-up, which
    #: the group's target-tracking policy averages (cdk/synapscribe_cdk/constructs/gpu_fleet.py).
    fleet_group: str | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_FLEET_GROUP", pattern=r"^[A-Za-z0-9_.-]{1,255}$"
    )

    #: This AgentCore's URL as the edge reaches it directly (lecture-affinity routing: the host
    #: registry); the host's start script sets it from the address it listens on. Unset: not
    #: registered, every question comes through the balancer.
    advertise_url: str | None = Field(
        default=None, validation_alias="SYNAPSCRIBE_ADVERTISE_URL", pattern=_URL
    )

    def platform(self) -> PlatformConfig:
        """platform.yaml with SYNAPSCRIBE_MAX_MODEL_LEN applied (validated again)."""
        base = load_platform()
        if self.max_model_len is None or self.max_model_len == base.vllm.max_model_len:
            return base
        try:
            return base.with_max_model_len(self.max_model_len)
        except PlatformConfigError as exc:
            raise SettingsError(f"SYNAPSCRIBE_MAX_MODEL_LEN: {exc}") from None

    def limits(self, platform: PlatformConfig) -> tuple[int, float, float]:
        """(max in-flight vLLM requests, queue timeout, upstream timeout)."""
        return (
            self.max_num_seqs or platform.vllm.max_num_seqs,
            self.queue_timeout_seconds or platform.agentcore.queue_timeout_seconds,
            self.upstream_timeout_seconds or platform.agentcore.upstream_timeout_seconds,
        )

    def drain_timeout(self, platform: PlatformConfig) -> float:
        """How long a SIGTERM lets the work in flight finish."""
        return self.drain_timeout_seconds or platform.agentcore.drain_timeout_seconds
