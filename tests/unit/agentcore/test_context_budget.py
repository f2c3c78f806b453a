"""No request to the model exceeds max_model_len even when text costs far more tokens than a rule of
thumb says (digits, CJK), and a question that cannot fit is `too_large`, never `internal`.

The stand-in (in process) counts digits one token each and CJK two, and refuses any request over
the context like vLLM; the pipeline counts by the UTF-8 byte bound and, when that does not fit,
exactly through the stand-in's /tokenize."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from synapscribe.platform import PlatformConfig
from synapscribe_local import audiogen
from synapscribe_local.standin.tokens import count_text_tokens

from .pipeline_rig import check_order

DIGITS = "3141592653589793238462643383279502884197169399375105820974944592"


@pytest.fixture(scope="module")
def short_lecture(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return audiogen.make_lecture(tmp_path_factory.mktemp("short") / "short.mp3", 0.5).path.read_bytes()


@pytest.fixture
def small(platform: PlatformConfig) -> PlatformConfig:
    return platform.with_max_model_len(4096)


async def test_a_digit_heavy_question_is_counted_exactly_and_fits(
    make_rig: Any, small: PlatformConfig, short_lecture: bytes
) -> None:
    question = "Which digits follow " + (DIGITS * 50)[:2900] + "?"
    assert count_text_tokens(question) > 2900  # about three times a 1-token-per-3-bytes estimate
    async with make_rig(p=small, lecture_bytes=short_lecture, duration=30.0) as rig:
        messages = await rig.ask(rig.session(), text=question)
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer", answer  # the stand-in refuses anything over 4096 tokens
        assert rig.deps.counter is not None and rig.deps.counter.calls > 0
        assert rig.vllm_bodies[-1]["max_tokens"] < small.context.answer_max_tokens  # shortened to fit


async def test_digit_heavy_history_is_trimmed_by_exact_counts(
    make_rig: Any, small: PlatformConfig, short_lecture: bytes
) -> None:
    async with make_rig(p=small, lecture_bytes=short_lecture, duration=30.0) as rig:
        session_id = rig.session()
        for i in range(12):
            rig.store.append_turn(
                session_id,
                {"question": f"Question number {i}: {DIGITS * 4}?", "answer": f"Answer {i}: {DIGITS * 3}."},
            )
        messages = await rig.ask(session_id, text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer", answer
        sent = json.dumps(rig.vllm_bodies[-1]["messages"])
        assert "Question number 11:" in sent and "Question number 0:" not in sent
        calls = rig.deps.counter.calls if rig.deps.counter else 0
        # A follow-up recounts only what is new: the history texts are remembered.
        await rig.ask(session_id, text="And what does it make?")
        assert rig.deps.counter is not None and rig.deps.counter.calls <= calls + 4


async def test_a_short_question_without_history_needs_no_tokenize_call(make_rig: Any) -> None:
    async with make_rig() as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
        assert check_order(messages, voice_in=False)["type"] == "answer"
        assert rig.deps.counter is None or rig.deps.counter.calls == 0


async def test_a_question_that_cannot_fit_is_too_large_naming_the_limit(
    make_rig: Any, small: PlatformConfig, short_lecture: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    question = "光合作用是什么" * 570  # 3990 characters: valid by the contract, ~8000 tokens
    async with make_rig(p=small, lecture_bytes=short_lecture, duration=30.0) as rig:
        messages = await rig.ask(rig.session(), text=question)
    assert [m["type"] for m in messages] == ["error"]
    error = messages[0]
    assert error["code"] == "too_large", error
    assert str(small.vllm.max_model_len) in error["message"]
    assert str(small.context.question_tokens) in error["message"]
    assert "Traceback" not in caplog.text
    assert rig.vllm_bodies == []  # nothing over the context was sent


async def test_a_voice_question_on_a_full_lecture_is_too_large_not_internal(
    make_rig: Any, platform: PlatformConfig, tmp_path: Path
) -> None:
    # A 4096 context whose lecture leaves no room: even the shortest answer does not fit.
    tiny = platform.with_max_model_len(4096)
    lecture = await asyncio.to_thread(
        lambda: audiogen.make_lecture(tmp_path / "long.mp3", 2.6).path.read_bytes()
    )  # 156 s = 3900 audio tokens
    async with make_rig(p=tiny, lecture_bytes=lecture, duration=156.0) as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "too_large", messages[-1]
    assert "4096" in messages[-1]["message"]
