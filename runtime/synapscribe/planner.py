"""Lecture context planning: which context mode serves a lecture of a given length.

Every threshold follows from the configured context length (platform.yaml's max_model_len and
the reserves beside it); see PlatformConfig's derived values.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from synapscribe.audio_tokens import AUDIO_MARKER_TOKENS, audio_tokens_for
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
# The first count is a cheap, TRUE upper bound: text at one token per UTF-8 byte (a byte-level BPE
# such as Qwen's never makes more tokens than bytes; rules of thumb like "4 characters a token"
# fail for digits, which Qwen splits one per token, and for CJK or emoji), audio exactly as the
# engine counts it where the item's decoded sample count is known (the lecture's MP3 items:
# synapscribe.audio_tokens) and otherwise at tokens_per_second rounded up plus AUDIO_ITEM_OVERHEAD_TOKENS
# (an upper bound), plus the chat template's per-message special tokens. Only when a request does not fit by that bound are its texts counted exactly by the
# model server's tokenizer (TextTokenCounter, vLLM's /tokenize) before any history is trimmed.

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


#: Natural text runs about 4 UTF-8 bytes a Qwen token for English prose and hardly ever more than
#: 6; a typed question of more bytes than the question reserve times this is over the reserve.
QUESTION_MAX_BYTES_PER_TOKEN = 6


def estimate_text_tokens(text: str) -> int:
    """A true upper bound on the tokens of `text`: its UTF-8 bytes (byte-level BPE never exceeds them)."""
    return len(text.encode("utf-8"))


def question_text_limit_bytes(platform: PlatformConfig | None = None) -> int:
    """The most UTF-8 bytes of a typed question checked without a tokenizer (the edge's limit)."""
    p = platform or load_platform()
    return p.context.question_tokens * QUESTION_MAX_BYTES_PER_TOKEN


def question_text_too_large(text: str, platform: PlatformConfig | None = None) -> str | None:
    """Why a typed question is surely over the question reserve, or None when it may fit."""
    p = platform or load_platform()
    size = len(text.encode("utf-8"))
    limit = question_text_limit_bytes(p)
    if size <= limit:
        return None
    return (
        f"the question is {size} bytes of text (UTF-8); a question may be about {p.context.question_tokens} "
        f"tokens, at most {limit} bytes: shorten it"
    )


def audio_item_tokens(duration_seconds: float, platform: PlatformConfig | None = None) -> int:
    """An upper bound on the tokens of one audio item of the given duration, template tokens
    included: for items whose decoded sample count is not known (see exact_audio_item_tokens)."""
    p = platform or load_platform()
    return max(1, math.ceil(duration_seconds * p.audio.tokens_per_second - 1e-9)) + AUDIO_ITEM_OVERHEAD_TOKENS


def exact_audio_item_tokens(samples: int, rate: int, platform: PlatformConfig | None = None) -> int:
    """The engine's tokens of one audio item of `samples` decoded samples at `rate` Hz, its
    <|audio_bos|> and <|audio_eos|> included (tests/engine compares them on AgentCore's items)."""
    p = platform or load_platform()
    return audio_tokens_for(samples, rate, p.audio.tokens_per_second) + AUDIO_MARKER_TOKENS


def audio_part_tokens(part: Mapping[str, Any], platform: PlatformConfig | None = None) -> int:
    """Tokens of an audio content part: exact when it carries its decoded length under the private
    keys `_samples` and `_rate`, else the upper bound from its `_seconds`; refused without either."""
    samples, rate = part.get("_samples"), part.get("_rate")
    if samples is not None and rate is not None:
        return exact_audio_item_tokens(int(samples), int(rate), platform)
    seconds = part.get("_seconds")
    if seconds is None:
        raise ValueError("an audio part without its duration cannot be counted")
    return audio_item_tokens(float(seconds), platform)


def message_texts(message: Mapping[str, Any]) -> list[str]:
    """Every text of a chat message that costs tokens: its role, its content or its text parts."""
    content = message.get("content")
    texts = [str(message.get("role", ""))]
    if isinstance(content, str):
        texts.append(content)
    else:
        texts.extend(part["text"] for part in content or [] if part.get("type") == "text")
    return texts


def estimate_message_tokens(
    message: Mapping[str, Any],
    platform: PlatformConfig | None = None,
    text_tokens: Callable[[str], int] = estimate_text_tokens,
) -> int:
    """Tokens of one chat message: text parts by `text_tokens` (the byte bound unless the model's
    exact counts are given), audio parts by their known duration.

    Audio parts must carry their decoded length under the private keys `_samples` and `_rate`
    (counted exactly) or their duration under `_seconds` (an upper bound; see
    synapscribe.agentcore.prompts); an audio part without either is refused rather than guessed.
    """
    content = message.get("content")
    total = MESSAGE_OVERHEAD_TOKENS + text_tokens(str(message.get("role", "")))
    if isinstance(content, str):
        return total + text_tokens(content)
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            total += text_tokens(part["text"])
        elif kind in ("input_audio", "audio_url"):
            total += audio_part_tokens(part, platform)
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
            f"the lecture and the question need {fixed_tokens} tokens, and an answer at least "
            f"{MIN_ANSWER_TOKENS} more; the model's context holds {limit} tokens"
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


class TextTokenCounter:
    """Exact token counts of texts by the model server's tokenizer, remembered (LRU, bounded by the
    characters of the texts held) so a session's history and the fixed prompt texts are counted once
    per process. `count` is e.g. VllmClient.count_tokens (vLLM's /tokenize)."""

    def __init__(
        self,
        count: Callable[[str], Awaitable[int]],
        max_chars: int = 8_000_000,
        concurrency: int = 8,
    ) -> None:
        self._count = count
        self._known: OrderedDict[str, int] = OrderedDict()
        self._chars = 0
        self.max_chars = max_chars
        self.concurrency = concurrency
        self.calls = 0

    def _remember(self, text: str, tokens: int) -> None:
        if text in self._known or len(text) > self.max_chars:
            return
        self._known[text] = tokens
        self._chars += len(text)
        while self._chars > self.max_chars:
            old, _ = self._known.popitem(last=False)
            self._chars -= len(old)

    async def counts(self, texts: Iterable[str]) -> dict[str, int]:
        """Each distinct text's exact token count; raises what `count` raises."""
        wanted = list(dict.fromkeys(texts))
        out: dict[str, int] = {}
        missing: list[str] = []
        for text in wanted:
            if not text:
                out[text] = 0
            elif text in self._known:
                self._known.move_to_end(text)
                out[text] = self._known[text]
            else:
                missing.append(text)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(text: str) -> int:
            async with gate:
                self.calls += 1
                return await self._count(text)

        for text, tokens in zip(missing, await asyncio.gather(*(one(t) for t in missing)), strict=True):
            out[text] = tokens
            self._remember(text, tokens)
        return out
