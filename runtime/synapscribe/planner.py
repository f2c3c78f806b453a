"""Lecture context planning: which context mode serves a lecture of a given length.

Every threshold follows from the configured context length (platform.yaml's max_model_len and
the reserves beside it); see PlatformConfig's derived values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from synapscribe.platform import PlatformConfig, load_platform

ContextMode = Literal["audio", "transcript"]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


@dataclass(frozen=True)
class LecturePlan:
    mode: ContextMode | None  # None: rejected
    duration_seconds: float
    estimated_tokens: int
    reason: str | None = None


def plan_lecture(duration_seconds: float, platform: PlatformConfig | None = None) -> LecturePlan:
    """Plan a lecture from its measured duration.

    audio when its audio tokens fit beside the reserves, transcript when its estimated
    transcript does, otherwise rejected with a reason naming the maximum.
    """
    p = platform or load_platform()
    if duration_seconds <= 0:
        return LecturePlan(None, duration_seconds, 0, "The recording has no audio (its duration is zero).")
    audio_tokens = int(duration_seconds * p.audio.tokens_per_second + 0.999)
    if duration_seconds <= p.max_audio_lecture_seconds:
        return LecturePlan("audio", duration_seconds, audio_tokens)
    transcript_tokens = int(duration_seconds / 60 * p.audio.transcript_tokens_per_minute + 0.999)
    if duration_seconds <= p.max_transcript_lecture_seconds:
        return LecturePlan("transcript", duration_seconds, transcript_tokens)
    return LecturePlan(
        None,
        duration_seconds,
        transcript_tokens,
        f"The lecture is {_minutes(duration_seconds)} long; the longest lecture this deployment serves is "
        f"{_minutes(p.max_transcript_lecture_seconds)} (context of {p.vllm.max_model_len} tokens). "
        "Split the recording into parts and upload each one.",
    )
