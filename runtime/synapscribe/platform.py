"""The shared platform configuration (platform.yaml) as typed, validated values.

Everything that more than one part of the platform needs (ports, the model, vLLM's context and
memory settings, audio budget, limits) is read from here. The runtime imports it, the CDK app
imports it, and Ansible reads `synapscribe platform --format json` (which includes the derived
values below) so none of them repeats a number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ports(_Strict):
    agentcore: int = Field(ge=1, le=65535)
    vllm: int = Field(ge=1, le=65535)
    tts: int = Field(ge=1, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if len({self.agentcore, self.vllm, self.tts}) != 3:
            raise ValueError("ports.agentcore, ports.vllm and ports.tts must differ")
        return self


class Model(_Strict):
    id: str = Field(min_length=1)
    revision: str = Field(min_length=1)
    served_name: str = Field(min_length=1)
    path: str = Field(pattern=r"^/")
    dtype: str = Field(pattern=r"^(bfloat16|float16|auto)$")
    #: The model's own context limit; a longer vllm.max_model_len cannot be configured.
    max_position_embeddings: int = Field(ge=4096)


class Vllm(_Strict):
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    max_model_len: int = Field(ge=4096)
    gpu_memory_utilization: float = Field(gt=0.0, lt=1.0)
    max_num_seqs: PositiveInt
    max_num_batched_tokens: PositiveInt
    #: Lectures whose processed audio items one host keeps (sizes --mm-processor-cache-gb).
    processor_cache_lectures: PositiveInt
    #: The unit's readiness poll and systemd's TimeoutStartSec (model load and readiness).
    ready_timeout_seconds: int = Field(ge=60, le=7200)
    start_timeout_seconds: int = Field(ge=60, le=7200)

    @model_validator(mode="after")
    def _ready_inside_start(self) -> Vllm:
        # The readiness poll runs inside the start timeout (after the process has started).
        if self.ready_timeout_seconds >= self.start_timeout_seconds:
            raise ValueError(
                f"vllm.ready_timeout_seconds ({self.ready_timeout_seconds}) must be shorter than "
                f"vllm.start_timeout_seconds ({self.start_timeout_seconds}), which includes it"
            )
        return self


class Audio(_Strict):
    tokens_per_second: PositiveInt
    max_item_seconds: PositiveInt
    transcript_tokens_per_minute: PositiveInt


class Context(_Strict):
    system_prompt_tokens: PositiveInt
    question_tokens: PositiveInt
    answer_max_tokens: PositiveInt
    min_history_tokens: PositiveInt


class Limits(_Strict):
    lecture_max_bytes: PositiveInt
    query_max_bytes: PositiveInt
    inline_audio_max_bytes: PositiveInt
    query_max_seconds: PositiveInt
    message_max_bytes: PositiveInt
    #: API Gateway's WebSocket frame limit: a browser sends each message as one frame.
    frame_max_bytes: PositiveInt
    #: One POST policy may be POSTed again while it lives: a minute (issue 18).
    upload_url_expiry_seconds: int = Field(ge=10, le=60)
    #: An answer's audio link is a plain S3 GET anyone holding it may repeat: short-lived (issue 18).
    response_url_expiry_seconds: int = Field(ge=60, le=300)
    accepted_content_types: dict[str, str] = Field(min_length=1)


class Sessions(_Strict):
    ttl_seconds: PositiveInt
    connection_ttl_seconds: PositiveInt


class Prefixes(_Strict):
    lectures: str = Field(pattern=r"^[a-z]+/$")
    queries: str = Field(pattern=r"^[a-z]+/$")
    responses: str = Field(pattern=r"^[a-z]+/$")
    transcripts: str = Field(pattern=r"^[a-z]+/$")
    segments: str = Field(pattern=r"^[a-z]+/$")


class Storage(_Strict):
    prefixes: Prefixes
    ephemeral_days: PositiveInt
    #: Lectures, transcripts and segments expire (S3 lifecycle and DynamoDB TTL) after this many days.
    retention_days: PositiveInt
    #: A pending lecture (its upload not yet validated) ends after this many seconds.
    pending_upload_seconds: int = Field(ge=60, le=86400)


class Quotas(_Strict):
    """Per-owner quotas (quotas.py holds them in the limits table)."""

    lectures: PositiveInt
    stored_bytes: PositiveInt
    uploads_in_progress: PositiveInt
    questions_per_minute: PositiveInt
    jobs_in_flight: PositiveInt
    job_lease_seconds: int = Field(ge=30, le=3600)


class Rates(_Strict):
    """Per-connection and per-source-address message rates (edge/rates.py)."""

    window_seconds: int = Field(ge=1, le=3600)
    connection_messages: PositiveInt
    source_messages: PositiveInt

    @model_validator(mode="after")
    def _source_covers_a_connection(self) -> Rates:
        if self.source_messages < self.connection_messages:
            raise ValueError(
                f"rates.source_messages ({self.source_messages}) must be at least "
                f"rates.connection_messages ({self.connection_messages}): one address carries one connection or more"
            )
        return self


class Sweeper(_Strict):
    """The scheduled sweeper (edge/sweeper.py)."""

    interval_seconds: int = Field(ge=60, le=86400)
    max_per_run: PositiveInt
    stale_handoff_seconds: int = Field(ge=60)
    max_resumes: int = Field(ge=1, le=20)


#: A spot instance gets 2 minutes' notice; the drain and the shutdown after it must fit inside.
SPOT_NOTICE_SECONDS = 120
#: What systemd allows AgentCore besides its drain: closing connections, clients and the lifespan.
AGENTCORE_STOP_MARGIN_SECONDS = 15
#: What vLLM's processor cache holds per second of audio for Qwen2.5-Omni: the Whisper feature
#: extractor's log-mel input features, 128 bins x 100 frames a second in float32 (transformers
#: WhisperFeatureExtractor; vLLM sizes its cache entries by their tensors' bytes).
PROCESSED_AUDIO_BYTES_PER_SECOND = 128 * 100 * 4


class AgentCoreLimits(_Strict):
    queue_timeout_seconds: float = Field(gt=0)
    #: A waiter this old is served next regardless of class (agentcore/admission.py); 0 is first
    #: come first served. Below the queue timeout, or it would never act.
    admission_aging_seconds: float = Field(ge=0)
    upstream_timeout_seconds: float = Field(gt=0)
    #: Tokens per chunk of the answer's stream (vLLM's per-request `stream_interval`).
    answer_stream_interval: int = Field(ge=1, le=16)
    drain_timeout_seconds: float = Field(gt=0, le=SPOT_NOTICE_SECONDS - AGENTCORE_STOP_MARGIN_SECONDS)
    #: How often a host writes its registry item, and how old an item may be to be routed to.
    heartbeat_seconds: float = Field(gt=0, le=60)
    registry_ttl_seconds: int = Field(gt=0, le=600)

    @model_validator(mode="after")
    def _aging_acts_before_the_timeout(self) -> AgentCoreLimits:
        if self.registry_ttl_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"agentcore.registry_ttl_seconds ({self.registry_ttl_seconds}) must be at least two "
                f"heartbeats ({self.heartbeat_seconds:g} s each): one late write would drop a live host"
            )
        if self.admission_aging_seconds >= self.queue_timeout_seconds:
            raise ValueError(
                f"agentcore.admission_aging_seconds ({self.admission_aging_seconds:g}) must be below "
                f"agentcore.queue_timeout_seconds ({self.queue_timeout_seconds:g}): a waiter times out first"
            )
        return self


@dataclass(frozen=True)
class Channel:
    """One environment's image channel: the SSM parameter its launch template resolves at launch
    (`current`) and the id it held before the last promotion (`previous`, for rollback)."""

    environment: str
    current: str
    previous: str


class Ami(_Strict):
    #: The channel's parameter name with ENV_PLACEHOLDER for the environment.
    channel_parameter: str = Field(pattern=r"^/[A-Za-z0-9/_.{}-]+$")
    previous_suffix: str = Field(pattern=r"^/[A-Za-z0-9/_.-]+$")
    #: The single parameter before channels existed (read only by the migration note's commands).
    legacy_parameter: str = Field(pattern=r"^/[A-Za-z0-9/_.-]+$")

    @field_validator("channel_parameter")
    @classmethod
    def _per_environment(cls, value: str) -> str:
        rest = value.replace(ENV_PLACEHOLDER, "", 1)
        if ENV_PLACEHOLDER not in value or "{" in rest or "}" in rest:
            raise ValueError(
                f"{value!r} must contain {ENV_PLACEHOLDER} exactly once: one channel per environment"
            )
        return value

    def channel(self, environment: str) -> Channel:
        """The channel of `environment` (cdk.json's name, e.g. dev)."""
        if not _ENVIRONMENT.fullmatch(environment):
            raise ValueError(f"{environment!r} is not an environment name")
        current = self.channel_parameter.replace(ENV_PLACEHOLDER, environment)
        return Channel(environment=environment, current=current, previous=current + self.previous_suffix)


class TtsDefaults(_Strict):
    default_voice: str = Field(min_length=1)
    gtts_timeout_seconds: float = Field(gt=0)
    gtts_retries: int = Field(ge=0, le=10)


#: The placeholder each fleet log group name holds for the environment (cdk.json's, e.g. `dev`).
#: Dev and prod may share an account, so each needs its own groups, but one AMI serves every
#: environment: the bake keeps the placeholder in the agent's configuration and the launch
#: template's user data fills it in at boot (cdk/synapscribe_cdk/constructs/gpu_fleet.py).
ENV_PLACEHOLDER = "{env}"
#: A CloudWatch Logs group name (CreateLogGroup: 1-512 characters of [.-_/#A-Za-z0-9]), here
#: absolute and without '#', with the placeholder's braces.
_LOG_GROUP_TEMPLATE = r"^/[A-Za-z0-9/_.{}-]{1,511}$"
_LOG_GROUP_NAME = re.compile(r"^/[A-Za-z0-9/_.-]{1,511}$")
#: What may stand for the placeholder: a name of log group characters, no '/' (cdk.json's
#: environment names, ^[a-z][a-z0-9-]{1,15}$, all are).
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class LogGroups(_Strict):
    """Name templates of the fleet's log groups: each holds ENV_PLACEHOLDER once; `names(env)`
    gives one environment's groups."""

    vllm: str = Field(pattern=_LOG_GROUP_TEMPLATE)
    tts: str = Field(pattern=_LOG_GROUP_TEMPLATE)
    agentcore: str = Field(pattern=_LOG_GROUP_TEMPLATE)
    metrics: str = Field(pattern=_LOG_GROUP_TEMPLATE)

    @field_validator("vllm", "tts", "agentcore", "metrics")
    @classmethod
    def _per_environment(cls, value: str) -> str:
        rest = value.replace(ENV_PLACEHOLDER, "", 1)
        if ENV_PLACEHOLDER not in value or "{" in rest or "}" in rest:
            raise ValueError(
                f"{value!r} must contain {ENV_PLACEHOLDER} exactly once (and no other braces): "
                "environments sharing an account must not write to the same group"
            )
        return value

    @model_validator(mode="after")
    def _distinct(self) -> LogGroups:
        templates = list(self.model_dump().values())
        if len(set(templates)) != len(templates):
            raise ValueError("fleet.log_groups: each unit needs its own group")
        return self

    def names(self, environment: str) -> dict[str, str]:
        """The groups of `environment` (vllm, tts, agentcore, metrics -> name)."""
        if not _ENVIRONMENT.fullmatch(environment):
            raise ValueError(
                f"environment {environment!r}: expected 1-64 of A-Z a-z 0-9 _ . - (it becomes part of "
                "a log group name)"
            )
        names = {key: t.replace(ENV_PLACEHOLDER, environment) for key, t in self.model_dump().items()}
        for name in names.values():
            if not _LOG_GROUP_NAME.fullmatch(name):
                raise ValueError(f"log group {name!r} is longer than CloudWatch Logs allows (512)")
        return names


class Fleet(_Strict):
    """The GPU fleet's start-up time and log shipping (see platform.yaml's comment on each value)."""

    host_startup_seconds: int = Field(ge=30, le=3600)
    #: The parts of host_startup_seconds no storage option changes (synapscribe_ops.capacity.coldstart_cost).
    boot_seconds: int = Field(ge=0, le=1800)
    engine_warmup_seconds: int = Field(ge=0, le=1800)
    log_groups: LogGroups
    emf_port: int = Field(ge=1024, le=65535)

    @model_validator(mode="after")
    def _startup_leaves_time_for_the_weights(self) -> Fleet:
        if self.boot_seconds + self.engine_warmup_seconds >= self.host_startup_seconds:
            raise ValueError(
                f"fleet.host_startup_seconds ({self.host_startup_seconds}) must exceed fleet.boot_seconds "
                f"+ fleet.engine_warmup_seconds ({self.boot_seconds + self.engine_warmup_seconds}): "
                "the weights take time to read"
            )
        return self


_ABSOLUTE_PATH = r"^(/[A-Za-z0-9_.-]+)+$"
_FILE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
_UNIT_NAME = r"^[a-z][a-z0-9-]*$"


class HostUnits(_Strict):
    vllm: str = Field(pattern=_UNIT_NAME)
    tts: str = Field(pattern=_UNIT_NAME)
    agentcore: str = Field(pattern=_UNIT_NAME)

    def services(self) -> tuple[str, ...]:
        """The unit names with systemd's suffix, in start order (vLLM, TTS, AgentCore)."""
        return tuple(f"{name}.service" for name in (self.vllm, self.tts, self.agentcore))


class HostVenvs(_Strict):
    runtime: str = Field(pattern=_ABSOLUTE_PATH)
    vllm: str = Field(pattern=_ABSOLUTE_PATH)


class HostCloudWatchAgent(_Strict):
    """The CloudWatch agent's control script, the configuration template the bake writes (log group
    names still holding fleet.log_groups' placeholder) and the configuration the user data renders
    from it at boot for the instance's environment."""

    ctl: str = Field(pattern=_ABSOLUTE_PATH)
    config_template: str = Field(pattern=_ABSOLUTE_PATH)
    config: str = Field(pattern=_ABSOLUTE_PATH)


class Host(_Strict):
    """The GPU host's layout, shared by the user data (CDK), the bake (Packer) and the roles (Ansible)."""

    config_dir: str = Field(pattern=_ABSOLUTE_PATH)
    deploy_env_file: str = Field(pattern=_ABSOLUTE_PATH)
    units: HostUnits
    venvs: HostVenvs
    cloudwatch_agent: HostCloudWatchAgent
    #: An EC2 block device name (the Ubuntu image's root volume).
    root_device: str = Field(pattern=r"^/dev/(sd[a-z][0-9]*|xvd[a-z]+|nvme[0-9]+n[0-9]+)$")
    model_checksum_file: str = Field(pattern=_FILE_NAME)
    model_revision_file: str = Field(pattern=_FILE_NAME)

    @model_validator(mode="after")
    def _consistent(self) -> Host:
        if Path(self.deploy_env_file).parent != Path(self.config_dir):
            raise ValueError(
                f"host.deploy_env_file ({self.deploy_env_file}) must be in host.config_dir ({self.config_dir}), "
                "which the user data creates"
            )
        units = self.units.model_dump().values()
        if len(set(units)) != len(units):
            raise ValueError("host.units.vllm, host.units.tts and host.units.agentcore must differ")
        if self.model_checksum_file == self.model_revision_file:
            raise ValueError("host.model_checksum_file and host.model_revision_file must differ")
        agent = self.cloudwatch_agent
        for key, path in (("config_template", agent.config_template), ("config", agent.config)):
            if Path(path).parent != Path(self.config_dir):
                raise ValueError(
                    f"host.cloudwatch_agent.{key} ({path}) must be in host.config_dir ({self.config_dir})"
                )
        if len({agent.config_template, agent.config, self.deploy_env_file}) != 3:
            raise ValueError(
                "host.cloudwatch_agent.config_template, host.cloudwatch_agent.config and host.deploy_env_file must differ"
            )
        return self


class Ceilings(_Strict):
    """The whole service's daily ceilings, across every owner (ceilings.py counts them in the
    limits table). Deployed environments set theirs in cdk.json; platform.yaml's are the local
    stack's."""

    daily_upload_bytes: PositiveInt
    daily_lectures: PositiveInt
    daily_questions: PositiveInt
    #: GPU host-hours a day (the sweeper accrues the fleet's in-service hosts); over it no
    #: question is admitted and no host is started.
    daily_gpu_host_hours: float = Field(gt=0, le=24 * 100)
    #: Hosts started from zero for a question (edge/warming.py) per night (noon to noon, UTC).
    nightly_warm_starts: int = Field(ge=0)


class PerAddress(_Strict):
    """Allowances per source address (an IPv4 address, or an IPv6 /64: one host holds a /64)."""

    daily_uploads: PositiveInt
    daily_upload_bytes: PositiveInt
    connections_per_minute: PositiveInt


class PlatformConfig(_Strict):
    ports: Ports
    model: Model
    vllm: Vllm
    audio: Audio
    context: Context
    limits: Limits
    sessions: Sessions
    storage: Storage
    agentcore: AgentCoreLimits
    ami: Ami
    tts: TtsDefaults
    quotas: Quotas
    rates: Rates
    ceilings: Ceilings
    per_address: PerAddress
    sweeper: Sweeper
    fleet: Fleet
    host: Host

    @model_validator(mode="after")
    def _context_within_the_model(self) -> PlatformConfig:
        if self.vllm.max_model_len > self.model.max_position_embeddings:
            raise ValueError(
                f"vllm.max_model_len ({self.vllm.max_model_len}) exceeds the model's own limit, "
                f"model.max_position_embeddings ({self.model.max_position_embeddings})"
            )
        return self

    @model_validator(mode="after")
    def _pending_outlives_its_upload_url(self) -> PlatformConfig:
        # The upload may start at the URL's last second; the pending lecture must still be there.
        if self.storage.pending_upload_seconds < self.limits.upload_url_expiry_seconds + 60:
            raise ValueError(
                f"storage.pending_upload_seconds ({self.storage.pending_upload_seconds}) must exceed "
                f"limits.upload_url_expiry_seconds ({self.limits.upload_url_expiry_seconds}) by at least 60 s"
            )
        return self

    @model_validator(mode="after")
    def _audio_item_fits_encoder_cache(self) -> PlatformConfig:
        item_tokens = self.audio.max_item_seconds * self.audio.tokens_per_second
        if item_tokens > self.max_audio_item_tokens:
            raise ValueError(
                f"audio.max_item_seconds ({self.audio.max_item_seconds} s = {item_tokens} tokens) must stay "
                f"within vllm.max_num_batched_tokens ({self.vllm.max_num_batched_tokens}), which sizes vLLM's "
                "encoder cache"
            )
        if self.reserved_tokens >= self.vllm.max_model_len:
            raise ValueError("context reserves exceed vllm.max_model_len: nothing is left for the lecture")
        return self

    # Derived values: computed here once, so no consumer re-derives them.

    @property
    def reserved_tokens(self) -> int:
        """Tokens each request keeps free for the prompt, the question, history and the answer."""
        c = self.context
        return c.system_prompt_tokens + c.question_tokens + c.answer_max_tokens + c.min_history_tokens

    @property
    def lecture_token_budget(self) -> int:
        """Tokens left for the lecture itself (audio or transcript)."""
        return self.vllm.max_model_len - self.reserved_tokens

    @property
    def max_audio_lecture_seconds(self) -> int:
        """The longest lecture served as audio."""
        return self.lecture_token_budget // self.audio.tokens_per_second

    @property
    def max_transcript_lecture_seconds(self) -> int:
        """The longest lecture whose (estimated) transcript fits."""
        return self.lecture_token_budget * 60 // self.audio.transcript_tokens_per_minute

    @property
    def max_audio_item_tokens(self) -> int:
        """The most tokens one audio item may take: vLLM's encoder cache, which
        --max-num-batched-tokens sizes while --limit-mm-per-prompt turns image and video off (the
        vLLM unit does). vLLM refuses a longer item with HTTP 400; tests/engine proves both sides."""
        return self.vllm.max_num_batched_tokens

    @property
    def max_audio_items_per_prompt(self) -> int:
        """vLLM's --limit-mm-per-prompt audio count: the lecture's items plus the question."""
        return math.ceil(self.max_audio_lecture_seconds / self.audio.max_item_seconds) + 1

    @property
    def mm_processor_cache_gb(self) -> float:
        """vLLM's --mm-processor-cache-gb: room for vllm.processor_cache_lectures lectures of the
        longest audio-mode length, at PROCESSED_AUDIO_BYTES_PER_SECOND, rounded up to 0.1 GiB."""
        need = (
            self.vllm.processor_cache_lectures
            * self.max_audio_lecture_seconds
            * PROCESSED_AUDIO_BYTES_PER_SECOND
        )
        return math.ceil(need * 10 / 2**30) / 10

    @property
    def context_lengths(self) -> tuple[int, ...]:
        """The context modes: the configured max_model_len (the default) and the model's own limit."""
        return tuple(sorted({self.vllm.max_model_len, self.model.max_position_embeddings}))

    @property
    def agentcore_stop_timeout_seconds(self) -> int:
        """systemd's TimeoutStopSec for AgentCore: its drain plus the shutdown after it."""
        return math.ceil(self.agentcore.drain_timeout_seconds) + AGENTCORE_STOP_MARGIN_SECONDS

    def with_max_model_len(self, max_model_len: int) -> PlatformConfig:
        """The same configuration at another context length, validated again."""
        data = self.model_dump()
        data["vllm"]["max_model_len"] = max_model_len
        return parse_platform(data, f"max_model_len={max_model_len}")

    def derived(self) -> dict[str, int]:
        return {
            "reserved_tokens": self.reserved_tokens,
            "lecture_token_budget": self.lecture_token_budget,
            "max_audio_lecture_seconds": self.max_audio_lecture_seconds,
            "max_transcript_lecture_seconds": self.max_transcript_lecture_seconds,
            "max_audio_items_per_prompt": self.max_audio_items_per_prompt,
            "max_audio_item_tokens": self.max_audio_item_tokens,
            "agentcore_stop_timeout_seconds": self.agentcore_stop_timeout_seconds,
        }

    def derived_floats(self) -> dict[str, float]:
        return {"mm_processor_cache_gb": self.mm_processor_cache_gb}

    def as_dict(self) -> dict[str, Any]:
        """The configuration with its derived values, as Ansible and the CLI see it."""
        return {
            **self.model_dump(),
            "derived": {
                **self.derived(),
                **self.derived_floats(),
                "context_lengths": list(self.context_lengths),
            },
        }


class PlatformConfigError(ValueError):
    """platform.yaml (or an override of it) is invalid; the message names the setting."""


def parse_platform(data: Any, source: str = "platform.yaml") -> PlatformConfig:
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise PlatformConfigError(f"{source}: {problems}") from None


def load_platform_file(path: Path) -> PlatformConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlatformConfigError(f"{path}: cannot read: {exc}") from None
    return parse_platform(data, str(path))


@cache
def load_platform() -> PlatformConfig:
    """The packaged platform.yaml (cached: it is read once per process)."""
    text = resources.files("synapscribe").joinpath("platform.yaml").read_text(encoding="utf-8")
    return parse_platform(yaml.safe_load(text))
