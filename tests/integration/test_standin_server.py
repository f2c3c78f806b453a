"""The stand-in as a real server (subprocess on a free port), driven by the pinned `openai` client."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from synapscribe.platform import load_platform
from synapscribe_local.audiogen import make_lecture, speak

pytestmark = pytest.mark.integration

MODEL = load_platform().model.served_name


def client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url + "/v1", api_key="EMPTY", max_retries=0, timeout=30)


def audio(path: Path, fmt: str) -> dict[str, Any]:
    data = base64.b64encode(path.read_bytes()).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def metric(base_url: str, name: str) -> float:
    text = httpx.get(base_url + "/metrics").text
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.M)
    assert match, f"{name} missing"
    return float(match.group(1))


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("standin-audio")
    return {
        "question": speak("Where do the light dependent reactions split water?", root / "q.mp3", "mp3").path,
        "lecture": make_lecture(root / "lecture.mp3", 0.5).path,
        "long": make_lecture(root / "long.mp3", 1.5).path,  # 90 s = 2250 tokens > 2048
        "item60": make_lecture(root / "item60.wav", 1.0, "wav").path,
    }


async def test_models_and_non_streaming_answer(standin_server: str) -> None:
    async with client(standin_server) as c:
        models = await c.models.list()
        assert [m.id for m in models.data] == [MODEL]
        resp = await c.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "Ribosomes build proteins. Chloroplasts hold chlorophyll."},
                {"role": "user", "content": "What do ribosomes build?"},
            ],
            max_tokens=200,
        )
    text = resp.choices[0].message.content or ""
    assert text.startswith("[stand-in] You asked: What do ribosomes build?")
    assert "Ribosomes build proteins." in text
    assert resp.usage is not None and resp.usage.completion_tokens <= 200


async def test_streaming_answer_over_lecture_audio(standin_server: str, sounds: dict[str, Path]) -> None:
    async with client(standin_server) as c:
        stream = await c.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "The lecture:"}, audio(sounds["lecture"], "mp3")]},
                {"role": "assistant", "content": "I have the lecture."},
                {"role": "user", "content": [audio(sounds["question"], "mp3"),
                                             {"type": "text", "text": "The question is in this audio. Answer it."}]},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        pieces: list[str] = []
        finish: list[str] = []
        usage = None
        async for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
            usage = chunk.usage or usage
    text = "".join(pieces)
    assert len(pieces) > 20  # token by token
    assert finish == ["stop"]
    assert text.startswith("[stand-in] You asked: Where do the light dependent reactions split water?")
    assert (
        "The lecture says: In the light dependent reactions, water is split and oxygen is released." in text
    )
    assert usage is not None and usage.prompt_tokens > 30 * 25  # 30 s of lecture audio


async def test_transcription_of_generated_speech(standin_server: str, sounds: dict[str, Path]) -> None:
    async with client(standin_server) as c:
        resp = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [audio(sounds["question"], "mp3"),
                                                   {"type": "text", "text": "Transcribe this audio."}]}],
            max_tokens=100,
        )  # fmt: skip
    assert resp.choices[0].message.content == "[stand-in] Where do the light dependent reactions split water?"


async def test_over_context_is_refused_like_vllm(standin_server: str) -> None:
    limit = load_platform().vllm.max_model_len
    async with client(standin_server) as c:
        with pytest.raises(openai.BadRequestError) as err:
            await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "word " * limit}], max_tokens=10
            )
        assert err.value.status_code == 400
        assert f"This model's maximum context length is {limit} tokens" in err.value.message
        # Like the engine: max_tokens over the whole context is refused naming it; up to the
        # context it is cut to what the prompt leaves, not refused.
        with pytest.raises(openai.BadRequestError, match=f"max_tokens={limit + 1} cannot be greater"):
            await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "short"}], max_tokens=limit + 1
            )
        done = await c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "short"}], max_tokens=limit
        )
        assert done.usage is not None and done.usage.total_tokens <= limit
        with pytest.raises(openai.NotFoundError):
            await c.chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])


async def test_audio_item_over_the_encoder_cache_is_refused(
    standin_server: str, sounds: dict[str, Path]
) -> None:
    async with client(standin_server) as c:
        with pytest.raises(openai.BadRequestError, match="exceeds the pre-allocated encoder cache size 2048"):
            await c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": [audio(sounds["long"], "mp3")]}],
                max_tokens=10,
            )
        ok = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [audio(sounds["item60"], "wav")]}],
            max_tokens=10,
        )
    assert ok.usage is not None and ok.usage.prompt_tokens >= 60 * 25


async def test_follow_up_repeating_the_audio_hits_the_prefix_cache(
    standin_server: str, sounds: dict[str, Path]
) -> None:
    prefix: list[Any] = [
        {"role": "system", "content": "Answer from the lecture."},
        {"role": "user", "content": [audio(sounds["lecture"], "mp3")]},
        {"role": "assistant", "content": "I have the lecture."},
    ]
    async with client(standin_server) as c:
        first = await c.chat.completions.create(
            model=MODEL, messages=[*prefix, {"role": "user", "content": "What is rubisco?"}], max_tokens=300
        )
        assert metric(standin_server, "vllm:prefix_cache_hits_total") == 0
        answer = first.choices[0].message.content or ""
        follow = await c.chat.completions.create(
            model=MODEL,
            messages=[*prefix, {"role": "user", "content": "What is rubisco?"},
                      {"role": "assistant", "content": answer}, {"role": "user", "content": "And chlorophyll?"}],
            max_tokens=300,
        )  # fmt: skip
    assert "Earlier in this conversation you asked: What is rubisco?" in (
        follow.choices[0].message.content or ""
    )
    assert metric(standin_server, "vllm:prefix_cache_hits_total") >= 30 * 25  # the lecture's audio was reused
    assert metric(standin_server, "vllm:prefix_cache_queries_total") > 2 * 30 * 25


async def test_flags_set_name_context_latency_and_usage_details(start_standin: Callable[..., str]) -> None:
    url = start_standin(
        "--max-model-len", "32768", "--served-model-name", "omni-test", "--enable-prompt-tokens-details",
        "--first-token-seconds", "0.3", "--tokens-per-second", "100",
    )  # fmt: skip
    async with httpx.AsyncClient() as http:
        models = (await http.get(url + "/v1/models")).json()
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [("omni-test", 32768)]
    messages: list[Any] = [{"role": "user", "content": "word " * 20000}]  # 25,000 tokens: only fits 32K
    async with client(url) as c:
        timings = []
        usages = []
        for _ in range(2):
            started = time.monotonic()
            stream = await c.chat.completions.create(
                model="omni-test", messages=messages, max_tokens=20, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            first_at = None
            async for chunk in stream:
                if first_at is None and chunk.choices and chunk.choices[0].delta.content:
                    first_at = time.monotonic() - started
                if chunk.usage is not None:
                    usages.append(chunk.usage)
            timings.append((first_at, time.monotonic() - started))
    for first_at, total in timings:
        assert first_at is not None and first_at >= 0.3
        assert total >= 0.3 + 19 / 100
    details = [u.prompt_tokens_details for u in usages]
    assert details[0] is not None and details[0].cached_tokens == 0
    assert details[1] is not None and details[1].cached_tokens == (usages[1].prompt_tokens - 1) // 16 * 16


def test_bad_environment_stops_the_service(start_standin: Callable[..., str]) -> None:
    from synapscribe_local.standin.process import StandinStartError

    with pytest.raises(StandinStartError, match="SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS"):
        start_standin(env={"SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS": "later"})


async def test_a_client_that_hangs_up_frees_its_slot(start_standin: Callable[..., str]) -> None:
    url = start_standin("--max-num-seqs", "1", "--tokens-per-second", "20")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello?"}], "stream": True}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if '"content":"[sta' in line:
                    break  # hang up after the first token; ~170 tokens at 20/s would take ~8 s
        running = 1.0
        for _ in range(50):
            running = float(re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)$",
                                       (await http.get("/metrics")).text, re.M)[0])  # fmt: skip
            if running == 0:
                break
            await asyncio.sleep(0.05)
        assert running == 0
        started = time.monotonic()
        done = await http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 5})
        assert done.status_code == 200 and time.monotonic() - started < 4  # not the ~8 s a held slot costs
        assert 'finished_reason="abort"} 1.0' in (await http.get("/metrics")).text
