"""The per-request context budget: history trimmed oldest first, never the lecture, never over."""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Any

import pytest
from chat_parts import make_wav
from synapscribe import planner
from synapscribe.agentcore import prompts
from synapscribe.platform import PlatformConfig
from synapscribe_local.standin.chat_request import parse_chat_request
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.tokens import count_text_tokens

# Text whose tokens a "characters per token" rule underestimates: Qwen splits numbers into single
# digits, and CJK, accented letters and emoji cost one or more tokens each.
COSTLY_TEXTS = [
    "3141592653589793238462643383279502884197" * 25,
    "In 1905, 2 + 2 = 4; 10^23 = 100000000000000000000000; call 555-0199-8842.",
    "光合作用是植物利用光能把二氧化碳和水转化为有机物的过程。" * 40,
    "🙂🌱🔬 " * 50,
    "héllo wörld ✓ " * 37,
]


@pytest.mark.parametrize("text", ["", "a", "Hello world.", "x" * 4001, *COSTLY_TEXTS])
def test_text_estimate_is_a_true_upper_bound_of_the_standin_count(text: str) -> None:
    assert planner.estimate_text_tokens(text) >= count_text_tokens(text)
    assert planner.estimate_text_tokens(text) == len(text.encode())


@pytest.mark.parametrize("text", COSTLY_TEXTS[:4])
def test_the_standin_charges_digits_and_cjk_like_qwen(text: str) -> None:
    # A rule of one token per 3 bytes (the planner's old estimate) is not a bound for these texts:
    # the stand-in catches an underestimate of this kind.
    assert count_text_tokens(text) > math.ceil(len(text.encode()) / 3)


def _standin_prompt_tokens(config: StandinConfig, messages: list[dict[str, Any]]) -> int:
    body = {"model": config.served_name, "messages": messages}
    return len(parse_chat_request(body, config).render())


@pytest.mark.parametrize("question", COSTLY_TEXTS)
def test_message_estimates_bound_the_standins_rendered_prompt(
    platform: PlatformConfig, question: str
) -> None:
    config = StandinConfig.from_platform(platform)
    messages = [
        {"role": "system", "content": prompts.SYSTEM_PROMPT},
        {"role": "user", "content": "Lecture of 12.5 minutes, parts 1-13 (00:00-12:30)."},
        {"role": "assistant", "content": prompts.LECTURE_ACK},
        *prompts.history_messages([{"question": question[:300], "answer": "It was 42 (forty-two)."}]),
        prompts.question_message(text=question),
    ]
    estimate = sum(planner.estimate_message_tokens(m, platform) for m in messages)
    estimate += planner.GENERATION_PROMPT_TOKENS
    assert estimate >= _standin_prompt_tokens(config, messages)


async def test_exact_counts_come_from_the_tokenizer_once_per_text() -> None:
    seen: list[str] = []

    async def tokenize(text: str) -> int:
        seen.append(text)
        await asyncio.sleep(0)
        return count_text_tokens(text)

    counter = planner.TextTokenCounter(tokenize, max_chars=100)
    first = await counter.counts(["2024", "user", "2024", "", "日本"])
    assert first == {"2024": 4, "user": 1, "": 0, "日本": 4}
    assert sorted(seen) == ["2024", "user", "日本"]  # duplicates and empty text cost no call
    await counter.counts(["user", "2024"])
    assert len(seen) == 3  # remembered
    await counter.counts(["z" * 60, "y" * 60])  # more than max_chars: the oldest entries go
    await counter.counts(["2024"])
    assert seen.count("2024") == 2


def test_estimate_message_tokens_uses_given_exact_counts(platform: PlatformConfig) -> None:
    m = {"role": "user", "content": "12345"}
    exact = {"user": 1, "12345": 5}
    assert planner.message_texts(m) == ["user", "12345"]
    assert (
        planner.estimate_message_tokens(m, platform, exact.__getitem__) == planner.MESSAGE_OVERHEAD_TOKENS + 6
    )


def test_a_typed_question_over_the_reserve_is_named_too_large(platform: PlatformConfig) -> None:
    limit = planner.question_text_limit_bytes(platform)
    assert limit == platform.context.question_tokens * planner.QUESTION_MAX_BYTES_PER_TOKEN
    assert planner.question_text_too_large("What does rubisco fix?", platform) is None
    assert planner.question_text_too_large("x" * 4000, platform) is None  # English up to the contract's 4000
    cjk = "光" * 4000
    reason = planner.question_text_too_large(cjk, platform)
    assert reason is not None
    assert f"{len(cjk.encode())} bytes" in reason and str(limit) in reason
    assert str(platform.context.question_tokens) in reason
    assert planner.question_text_too_large("光" * (limit // 3), platform) is None
    assert planner.question_text_too_large("光" * (limit // 3 + 1), platform) is not None


def test_audio_item_tokens_follow_the_configured_rate(platform: PlatformConfig) -> None:
    tps = platform.audio.tokens_per_second
    assert planner.audio_item_tokens(60, platform) == 60 * tps + planner.AUDIO_ITEM_OVERHEAD_TOKENS
    assert planner.audio_item_tokens(0.01, platform) == 1 + planner.AUDIO_ITEM_OVERHEAD_TOKENS


def test_message_tokens_count_audio_by_duration_and_refuse_unknown_parts(platform: PlatformConfig) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}, "_seconds": 10.0}
    text = {"type": "text", "text": "abc"}
    m = {"role": "user", "content": [audio, text]}
    assert planner.estimate_message_tokens(m, platform) == (
        planner.MESSAGE_OVERHEAD_TOKENS
        + planner.estimate_text_tokens("user")
        + planner.audio_item_tokens(10.0, platform)
        + 3  # "abc": 3 bytes
    )
    with pytest.raises(ValueError, match="duration"):
        planner.estimate_message_tokens({"role": "user", "content": [{"type": "input_audio"}]}, platform)
    with pytest.raises(ValueError, match="image_url"):
        planner.estimate_message_tokens({"role": "user", "content": [{"type": "image_url"}]}, platform)


def test_budget_keeps_everything_when_it_fits(platform: PlatformConfig) -> None:
    b = planner.budget_request(1000, [100, 100, 100], platform)
    assert (b.kept_turns, b.dropped_turns) == (3, 0)
    assert b.max_tokens == platform.context.answer_max_tokens
    assert b.total_tokens <= platform.vllm.max_model_len


def test_budget_drops_the_oldest_turns_first(platform: PlatformConfig) -> None:
    limit = platform.vllm.max_model_len
    answer = platform.context.answer_max_tokens
    fixed = limit - answer - 250  # room for two turns of 100, not three
    b = planner.budget_request(fixed, [100, 100, 100, 100], platform)
    assert (b.kept_turns, b.dropped_turns) == (2, 2)
    assert b.prompt_tokens == fixed + 200
    assert b.total_tokens <= limit


def test_budget_never_skips_a_newer_turn_to_keep_an_older_one(platform: PlatformConfig) -> None:
    limit = platform.vllm.max_model_len
    fixed = limit - platform.context.answer_max_tokens - 150
    # The newest turn is too big: nothing older is kept either (history stays contiguous).
    b = planner.budget_request(fixed, [10, 10, 500], platform)
    assert b.kept_turns == 0 and b.dropped_turns == 3


def test_budget_shortens_the_answer_only_without_history(platform: PlatformConfig) -> None:
    limit = platform.vllm.max_model_len
    b = planner.budget_request(limit - 100, [50], platform)
    assert b.kept_turns == 0
    assert b.max_tokens == 100
    assert b.total_tokens == limit


def test_budget_refuses_what_cannot_fit(platform: PlatformConfig) -> None:
    with pytest.raises(planner.ContextOverflowError, match=str(platform.vllm.max_model_len)):
        planner.budget_request(platform.vllm.max_model_len - planner.MIN_ANSWER_TOKENS + 1, [], platform)


def test_budget_follows_max_model_len(platform: PlatformConfig) -> None:
    big = platform.with_max_model_len(32768)
    turns = [1000] * 30
    small_budget = planner.budget_request(8000, turns, platform)
    big_budget = planner.budget_request(8000, turns, big)
    assert big_budget.kept_turns > small_budget.kept_turns
    assert big_budget.total_tokens <= 32768
    assert small_budget.total_tokens <= platform.vllm.max_model_len


@pytest.mark.parametrize("max_model_len", [16384, 32768])
def test_lecture_modes_follow_the_context(platform: PlatformConfig, max_model_len: int) -> None:
    p = platform.with_max_model_len(max_model_len)
    for minutes in (5, 12, 25, 70):
        plan = planner.plan_lecture(minutes * 60, p)
        if minutes * 60 <= p.max_audio_lecture_seconds:
            assert plan.mode == "audio"
        elif minutes * 60 <= p.max_transcript_lecture_seconds:
            assert plan.mode == "transcript"
        else:
            assert plan.mode is None and plan.reason
    if max_model_len == 16384:
        assert planner.plan_lecture(5 * 60, p).mode == "audio"
        assert planner.plan_lecture(12 * 60, p).mode == "transcript"
        assert planner.plan_lecture(25 * 60, p).mode == "transcript"
    rejected = planner.plan_lecture(p.max_transcript_lecture_seconds + 60, p)
    assert rejected.mode is None
    assert f"{p.max_transcript_lecture_seconds / 60:.0f} minutes" in (rejected.reason or "")


# Lengths whose tokens the stand-in counted before the rule moved to synapscribe.audio_tokens
# (tests/unit/standin/test_engine_parity.py; the engine agrees): (samples, rate, audio tokens).
KNOWN_AUDIO_LENGTHS = [
    (16000, 16000, 25),
    (16161, 16000, 25),  # one fewer than ceil(seconds x 25)
    (960000, 16000, 1500),
    (1666 * 576, 16000, 1499),  # an MP3 item of 1666 frames of 36 ms
    (1375 * 576, 16000, 1237),  # 1237.5 tokens of seconds: the planner's old count was 1238
    (8000, 8000, 25),
    (22050 * 3, 22050, 75),
]


@pytest.mark.parametrize(("samples", "rate", "tokens"), KNOWN_AUDIO_LENGTHS)
def test_exact_audio_tokens_are_the_standins_count(
    platform: PlatformConfig, samples: int, rate: int, tokens: int
) -> None:
    part = prompts.audio_part("AAAA", "mp3", samples / rate, (samples, rate))
    exact = planner.audio_part_tokens(part, platform)
    assert exact == planner.exact_audio_item_tokens(samples, rate, platform) == tokens + 2  # bos, eos
    # The bound from seconds alone (audio of unknown sample count) never undercounts it.
    assert planner.audio_item_tokens(samples / rate, platform) >= exact


@pytest.mark.parametrize(("seconds", "rate"), [(1.0, 16000), (1.0101, 16000), (2.5, 8000), (3.7, 22050)])
def test_planner_and_standin_count_a_wav_item_alike(
    platform: PlatformConfig, seconds: float, rate: int
) -> None:
    config = StandinConfig.from_platform(platform)
    data = make_wav(seconds, rate)
    samples = round(seconds * rate)
    part = prompts.audio_part(base64.b64encode(data).decode(), "wav", seconds, (samples, rate))
    text = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    with_audio = {"role": "user", "content": [{"type": "text", "text": "Hi"}, part]}
    standin = _standin_prompt_tokens(config, prompts.wire_messages([with_audio])) - _standin_prompt_tokens(
        config, [text]
    )
    assert planner.audio_part_tokens(part, platform) == standin


def test_audio_part_without_samples_or_seconds_is_refused(platform: PlatformConfig) -> None:
    with pytest.raises(ValueError, match="duration"):
        planner.audio_part_tokens({"type": "input_audio", "_samples": 16000}, platform)
