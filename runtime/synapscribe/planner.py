"""Lecture context planning: which context mode serves a lecture of a given length.

Every threshold follows from the configured context length (platform.yaml's max_model_len and
the reserves beside it); see PlatformConfig's derived values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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


# --------------------------------------------------------------------------- per-request budget
#
# AgentCore counts every request before sending it, so no request to vLLM can exceed the context.
# Without the model's tokenizer the count is an upper bound: text at one token per 3 UTF-8 bytes
# (English BPE runs about 4 characters a token), audio at tokens_per_second rounded up, plus the
# chat template's per-message and per-audio-item special tokens.

#: <|im_start|>, role, newline, <|im_end|>, newline; rounded up.
MESSAGE_OVERHEAD_TOKENS = 8
#: <|audio_bos|>, <|audio_eos|> and the encoder's rounding.
AUDIO_ITEM_OVERHEAD_TOKENS = 4
#: The generation prompt (<|im_start|>assistant\n).
GENERATION_PROMPT_TOKENS = 4
#: An answer is never cut shorter than this to make room; below it the request is refused.
MIN_ANSWER_TOKENS = 64


class ContextOverflowError(ValueError):
    """Even without any history the request would not fit the context."""


def estimate_text_tokens(text: str) -> int:
    """An upper bound on the tokens of `text` (one per 3 UTF-8 bytes, rounded up)."""
    return math.ceil(len(text.encode("utf-8")) / 3)


def audio_item_tokens(duration_seconds: float, platform: PlatformConfig | None = None) -> int:
    """Tokens of one audio item of the given duration, template tokens included."""
    p = platform or load_platform()
    return max(1, math.ceil(duration_seconds * p.audio.tokens_per_second - 1e-9)) + AUDIO_ITEM_OVERHEAD_TOKENS


def estimate_message_tokens(message: Mapping[str, Any], platform: PlatformConfig | None = None) -> int:
    """Tokens of one chat message: text parts by estimate, audio parts by their known duration.

    Audio parts must carry their duration under the private key `_seconds` (see
    synapscribe.agentcore.prompts); an audio part without it is refused rather than guessed.
    """
    content = message.get("content")
    total = MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(str(message.get("role", "")))
    if isinstance(content, str):
        return total + estimate_text_tokens(content)
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            total += estimate_text_tokens(part["text"])
        elif kind in ("input_audio", "audio_url"):
            seconds = part.get("_seconds")
            if seconds is None:
                raise ValueError("an audio part without its duration cannot be counted")
            total += audio_item_tokens(float(seconds), platform)
        else:
            raise ValueError(f"cannot count a content part of type {kind!r}")
    return total


@dataclass(frozen=True)
class RequestBudget:
    """How one request fits the context: which history turns it keeps and how long it may answer."""

    prompt_tokens: int  # upper bound, with the kept history
    max_tokens: int  # the answer's max_tokens
    kept_turns: int  # the newest turns kept
    dropped_turns: int  # the oldest turns left out
    max_model_len: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.max_tokens


def budget_request(
    fixed_tokens: int,
    turn_tokens: Sequence[int],
    platform: PlatformConfig | None = None,
    answer_max_tokens: int | None = None,
) -> RequestBudget:
    """Fit one request into `max_model_len`.

    `fixed_tokens` is everything that is never dropped (system prompt, lecture, question and
    the generation prompt); `turn_tokens` the history turns, oldest first. The newest turns are
    kept while they fit beside the full answer; the oldest go first, the lecture never. The
    answer is shortened (down to MIN_ANSWER_TOKENS) only when nothing of the history is left.
    """
    p = platform or load_platform()
    limit = p.vllm.max_model_len
    answer = answer_max_tokens if answer_max_tokens is not None else p.context.answer_max_tokens
    if fixed_tokens + MIN_ANSWER_TOKENS > limit:
        raise ContextOverflowError(
            f"the lecture and the question need about {fixed_tokens} tokens; the context holds {limit}"
        )
    used = fixed_tokens
    kept = 0
    for tokens in reversed(turn_tokens):
        if used + tokens + answer > limit:
            break
        used += tokens
        kept += 1
    max_tokens = min(answer, limit - used)
    return RequestBudget(
        prompt_tokens=used,
        max_tokens=max_tokens,
        kept_turns=kept,
        dropped_turns=len(turn_tokens) - kept,
        max_model_len=limit,
    )
