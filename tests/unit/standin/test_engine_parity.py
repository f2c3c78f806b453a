"""What the stand-in learned from the real engine (tests/engine/test_standin_conformance.py holds it
there): audio counted by the encoder's strides, not rounded up; the multimodal cache counters; hits
in blocks of the served --block-size; /tokenize refusing too many audio items; the stream's chunks."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
from chat_parts import audio_part, make_wav
from synapscribe.audio_tokens import audio_tokens_for
from synapscribe_local.standin.config import StandinConfig

from .standin_support import chat, make_client, metric


@pytest.mark.parametrize(
    ("samples", "rate", "tokens"),
    [
        (16000, 16000, 25),  # 1 s: 100 mel frames, halved twice
        (16161, 16000, 25),  # 102 frames -> 51 -> 25: one fewer than ceil(seconds x 25)
        (160000, 16000, 250),  # 10 s (the engine: 286 prompt tokens with its template)
        (960000, 16000, 1500),  # 60 s (the engine: 1536)
        (1666 * 576, 16000, 1499),  # an MP3 item of 1666 frames of 36 ms (59.976 s)
        (8000, 8000, 25),  # resampled to 16 kHz first
        (22050 * 3, 22050, 75),
    ],
)
def test_audio_tokens_follow_the_encoders_strides(samples: int, rate: int, tokens: int) -> None:
    assert audio_tokens_for(samples, rate, 25) == tokens


async def test_multimodal_cache_counts_items_of_admitted_requests() -> None:
    config = StandinConfig.from_platform()
    a, b = audio_part(make_wav(1.0, seed=1)), audio_part(make_wav(1.0, seed=2))
    async with make_client(config) as client:
        assert (await client.post("/v1/chat/completions", json=chat(config, [a, b, a]))).status_code == 200
        text = (await client.get("/metrics")).text
        assert (metric(text, "vllm:mm_cache_queries_total"), metric(text, "vllm:mm_cache_hits_total")) == (
            3,
            1,
        )
        # /tokenize and a refused request neither count nor fill the cache (as on the engine).
        await client.post("/tokenize", json={"messages": [{"role": "user", "content": [b]}]})
        refused = await client.post("/v1/chat/completions", json=chat(config, [b], max_tokens=10**6))
        assert refused.status_code == 400
        text = (await client.get("/metrics")).text
        assert (metric(text, "vllm:mm_cache_queries_total"), metric(text, "vllm:mm_cache_hits_total")) == (
            3,
            1,
        )
        assert (await client.post("/v1/chat/completions", json=chat(config, [b]))).status_code == 200
        text = (await client.get("/metrics")).text
        assert (metric(text, "vllm:mm_cache_queries_total"), metric(text, "vllm:mm_cache_hits_total")) == (
            4,
            2,
        )
        assert "vllm:gpu_cache_usage_perc" not in text  # not a metric of the pinned vLLM


@pytest.mark.parametrize("block_size", [16, 128])
async def test_prefix_cache_hits_come_in_blocks_of_the_block_size(block_size: int) -> None:
    config = StandinConfig.from_platform()
    config = dataclasses.replace(config, block_size=block_size)
    content = [audio_part(make_wav(20.0, seed=5)), {"type": "text", "text": "What is it?"}]
    async with make_client(config) as client:
        first = await client.post("/v1/chat/completions", json=chat(config, content))
        await client.post("/v1/chat/completions", json=chat(config, content))
        prompt = first.json()["usage"]["prompt_tokens"]
        hits = metric((await client.get("/metrics")).text, "vllm:prefix_cache_hits_total")
    assert hits == (prompt - 1) // block_size * block_size and hits % block_size == 0


async def test_tokenize_refuses_more_audio_items_than_allowed_but_no_length() -> None:
    config = StandinConfig.from_platform()
    one = audio_part(make_wav(1.0))
    async with make_client(config) as client:
        many = [{"role": "user", "content": [one] * (config.max_audio_items + 1)}]
        resp = await client.post("/tokenize", json={"messages": many})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "audio"
        assert resp.json()["error"]["message"] == (
            f"At most {config.max_audio_items} audio(s) may be provided in one prompt. (parameter=audio)"
        )
        long = [{"role": "user", "content": [audio_part(make_wav(90.0))]}]  # over the encoder cache
        assert (await client.post("/tokenize", json={"messages": long})).status_code == 200


async def _events(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    resp = await client.post("/v1/chat/completions", json=body)
    lines = [line.removeprefix("data: ") for line in resp.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


async def test_stream_chunks_carry_the_engines_fields() -> None:
    config = StandinConfig.from_platform()
    body = chat(config, "Hello?", max_tokens=3, stream=True, stream_options={"include_usage": True})
    async with make_client(config) as client:
        events = await _events(client, body)
    first, *content, finish, usage, done = events
    assert done == "[DONE]"
    assert set(first["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"}
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(
        set(c["choices"][0]) == {"index", "delta", "logprobs", "finish_reason", "token_ids"} for c in content
    )
    assert set(finish["choices"][0]) == {
        "index",
        "delta",
        "logprobs",
        "finish_reason",
        "token_ids",
        "stop_reason",
    }
    assert finish["choices"][0]["finish_reason"] == "length"
    # The usage chunk leaves its null fields out, as vLLM's does.
    assert usage["choices"] == [] and set(usage["usage"]) == {
        "prompt_tokens",
        "total_tokens",
        "completion_tokens",
    }
