"""The TTS service's settings, from `SYNAPSCRIBE_TTS_*` environment variables (validated at start)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from synapscribe.platform import load_platform

EngineName = Literal["gtts", "espeak-ng"]
ENGINE_NAMES: tuple[str, ...] = ("gtts", "espeak-ng")


def _platform_timeout() -> float:
    return load_platform().tts.gtts_timeout_seconds


def _platform_retries() -> int:
    return load_platform().tts.gtts_retries


def _platform_voice() -> str:
    return load_platform().tts.default_voice


class TtsSettings(BaseSettings):
    """Every field is read from `SYNAPSCRIBE_TTS_<FIELD>`; defaults come from platform.yaml."""

    model_config = SettingsConfigDict(env_prefix="SYNAPSCRIBE_TTS_", extra="ignore", frozen=True)

    #: Engines in the order they are tried, comma-separated: `gtts,espeak-ng` or `espeak-ng` (offline).
    engines: Annotated[tuple[EngineName, ...], NoDecode] = ("gtts", "espeak-ng")
    #: Fixed delay added to every request (benchmarks reproducing the report's 0.3 s per sentence).
    simulated_latency_ms: int = Field(default=0, ge=0, le=60_000)
    #: Bound of the audio cache (least recently used entries go first); 0 turns the cache off.
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, le=8 * 1024**3)
    max_input_chars: int = Field(default=4096, ge=1, le=100_000)
    default_voice: str = Field(default_factory=_platform_voice, min_length=1)
    gtts_timeout_seconds: float = Field(default_factory=_platform_timeout, gt=0, le=120)
    gtts_retries: int = Field(default_factory=_platform_retries, ge=0, le=10)
    #: All gTTS attempts for one request (timeouts, retries and backoff) end within this many
    #: seconds, then the offline engine speaks: well under AgentCore's TTS timeout.
    gtts_deadline_seconds: float = Field(default=3.0, gt=0, le=120)
    #: First retry waits this long, each further one twice as long (longer after a 429).
    gtts_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    #: After gTTS fails (retries exhausted), skip it this long so sentences do not each pay the timeout.
    gtts_cooldown_seconds: float = Field(default=60.0, ge=0, le=3600)
    #: Google Translate host suffix (`com`, `co.uk`, ...), as gTTS's `tld`.
    gtts_tld: str = Field(default="com", pattern=r"^[a-z]{2,3}(\.[a-z]{2,3})?$")
    espeak_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    mp3_bitrate_kbps: int = Field(default=48, ge=8, le=320)

    @field_validator("engines", mode="before")
    @classmethod
    def _split_engines(cls, value: object) -> object:
        if isinstance(value, str):
            names = [part.strip() for part in value.split(",")]
            if not value.strip() or any(not n for n in names):
                raise ValueError(f"a comma-separated list of engines from {', '.join(ENGINE_NAMES)}")
            value = tuple(names)
        if isinstance(value, tuple | list):
            if len(set(value)) != len(value):
                raise ValueError("an engine is listed twice")
            if not value:
                raise ValueError("at least one engine is needed")
        return value
