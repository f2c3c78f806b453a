"""The per-request context budget: history trimmed oldest first, never the lecture, never over."""

from __future__ import annotations

import math

import pytest
from synapscribe import planner
from synapscribe.platform import PlatformConfig
from synapscribe.standin.tokens import count_text_tokens


@pytest.mark.parametrize(
    "text", ["", "a", "Hello world.", "x" * 4001, "héllo wörld ✓ " * 37, "日本語のテキスト"]
)
def test_text_estimate_is_an_upper_bound_of_the_standin_count(text: str) -> None:
    assert planner.estimate_text_tokens(text) >= count_text_tokens(text)
    assert planner.estimate_text_tokens(text) == math.ceil(len(text.encode()) / 3)


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
        + 1
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
