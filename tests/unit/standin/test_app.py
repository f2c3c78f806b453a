"""The stand-in's HTTP app in process (httpx ASGI transport): shapes, refusals, scheduler, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from chat_parts import audio_part, make_wav
from synapscribe_local.standin.config import Latency, StandinConfig
from synapscribe_local.standin.tokens import count_text_tokens

from .standin_support import chat, make_client, metric


@pytest.fixture
async def client(config: StandinConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(config) as c:
        yield c


async def test_models_lists_the_served_name_and_context(
    client: httpx.AsyncClient, config: StandinConfig
) -> None:
    resp = await client.get("/v1/models")
    assert resp.status_code == 200
    (model,) = resp.json()["data"]
    assert model["id"] == config.served_name
    assert model["max_model_len"] == config.max_model_len
    assert (await client.get("/health")).status_code == 200


async def test_non_streaming_completion_shape(client: httpx.AsyncClient, config: StandinConfig) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(config, "Hello?", max_tokens=10))
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("[stand-in] ")
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 10
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 10


async def test_streaming_completion_shape(client: httpx.AsyncClient, config: StandinConfig) -> None:
    body = chat(config, "Hello?", stream=True, stream_options={"include_usage": True})
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in resp.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["stop"]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == count_text_tokens(text)
    assert text.startswith("[stand-in] You asked: Hello?")


async def test_refusal_is_vllms_error_json(client: httpx.AsyncClient, config: StandinConfig) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(config, "x" * 4 * config.max_model_len))
    assert resp.status_code == 400
    error = resp.json()["error"]
    # The engine names the parameter of a text prompt over the context (tests/engine/ checks it).
    assert error["type"] == "BadRequestError" and error["code"] == 400 and error["param"] == "input_tokens"
    assert error["message"].startswith(
        f"This model's maximum context length is {config.max_model_len} tokens."
    )
    bad_json = await client.post("/v1/chat/completions", content=b"{not json")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    # A refused request changed nothing: no tokens were counted.
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "vllm:prefix_cache_queries_total") == 0


async def test_repeat_with_the_same_audio_shows_prefix_cache_hits(
    client: httpx.AsyncClient, config: StandinConfig
) -> None:
    content = [audio_part(make_wav(8.0, text="Cells divide.")), {"type": "text", "text": "Summarise it."}]
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=chat(config, content))).status_code == 200
    metrics = (await client.get("/metrics")).text
    queries = metric(metrics, "vllm:prefix_cache_queries_total")
    hits = metric(metrics, "vllm:prefix_cache_hits_total")
    assert queries > 2 * 200
    assert hits >= 200  # the second request reused the 8 s (200 tokens) of audio


async def test_tokenize_counts_like_the_chat_endpoint(
    client: httpx.AsyncClient, config: StandinConfig
) -> None:
    content = [audio_part(make_wav(2.0)), {"type": "text", "text": "abcdefgh"}]
    resp = await client.post("/tokenize", json={"model": config.served_name, "messages": [
        {"role": "user", "content": content}]})  # fmt: skip
    assert resp.status_code == 200
    count = resp.json()["count"]
    done = await client.post("/v1/chat/completions", json=chat(config, content))
    assert done.json()["usage"]["prompt_tokens"] == count
    text = await client.post("/tokenize", json={"prompt": "abcdefgh"})
    assert text.json()["count"] == 2 and len(text.json()["tokens"]) == 2
    both = await client.post("/tokenize", json={"prompt": "a", "messages": []})
    assert both.status_code == 400


async def test_only_max_num_seqs_run_the_rest_wait(config: StandinConfig) -> None:
    slow = dataclasses.replace(config, max_num_seqs=2, latency=Latency(first_token_seconds=0.5))
    async with make_client(slow) as client:
        started = time.monotonic()
        tasks = [
            asyncio.create_task(client.post("/v1/chat/completions", json=chat(slow, f"Question {i}?")))
            for i in range(5)
        ]
        seen: list[tuple[float, float]] = []
        while time.monotonic() - started < 0.45:  # the first two take 0.5 s: the state holds till then
            metrics = (await client.get("/metrics")).text
            seen.append(
                (metric(metrics, "vllm:num_requests_running"), metric(metrics, "vllm:num_requests_waiting"))
            )
            if seen[-1] == (2, 3):
                break
            await asyncio.sleep(0.02)
        assert seen[-1] == (2, 3), seen
        assert metric(metrics, "vllm:kv_cache_usage_perc") > 0
        results = await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        assert all(r.status_code == 200 for r in results)
        assert elapsed >= 1.45  # three rounds of 0.5 s
        after = (await client.get("/metrics")).text
        assert metric(after, "vllm:num_requests_running") == 0
        assert metric(after, "vllm:num_requests_waiting") == 0


async def test_latency_model_paces_the_stream(config: StandinConfig) -> None:
    paced = dataclasses.replace(
        config, latency=Latency(first_token_seconds=0.2, tokens_per_second=100, answer_tokens=30)
    )
    async with make_client(paced) as client:
        started = time.monotonic()
        resp = await client.post("/v1/chat/completions", json=chat(paced, "Hi?", max_tokens=31))
        elapsed = time.monotonic() - started
    assert resp.json()["usage"]["completion_tokens"] == 31
    assert elapsed >= 0.2 + 30 / 100 - 0.02


async def test_transcription_latency(config: StandinConfig) -> None:
    paced = dataclasses.replace(config, latency=Latency(transcription_seconds=0.3))
    content = [audio_part(make_wav(1.0, text="Hello there.")), {"type": "text", "text": "Transcribe this."}]
    async with make_client(paced) as client:
        started = time.monotonic()
        resp = await client.post("/v1/chat/completions", json=chat(paced, content))
        elapsed = time.monotonic() - started
    assert resp.json()["choices"][0]["message"]["content"] == "[stand-in] Hello there."
    assert elapsed >= 0.3


async def test_api_key_guards_only_v1(config: StandinConfig) -> None:
    async with make_client(config, api_key="sekrit") as client:
        assert (await client.get("/v1/models")).status_code == 401
        ok = await client.get("/v1/models", headers={"Authorization": "Bearer sekrit"})
        assert ok.status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_prompt_tokens_details_report_cached_tokens(config: StandinConfig) -> None:
    detailed = dataclasses.replace(config, prompt_tokens_details=True)
    content = [audio_part(make_wav(4.0, seed=5)), {"type": "text", "text": "What is said here?"}]
    async with make_client(detailed) as client:
        first = (await client.post("/v1/chat/completions", json=chat(detailed, content))).json()["usage"]
        second = (await client.post("/v1/chat/completions", json=chat(detailed, content))).json()["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached == (second["prompt_tokens"] - 1) // 16 * 16 and cached >= 100
    async with make_client(config) as plain:
        usage = (await plain.post("/v1/chat/completions", json=chat(config, "Hi?"))).json()["usage"]
    assert usage["prompt_tokens_details"] is None


def _content_chunks(text: str) -> list[tuple[str, str | None]]:
    """Each streamed chunk's (content, finish_reason), past the opening role chunk."""
    events = [line[len("data: ") :] for line in text.split("\n\n") if line]
    chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
    return [(c["delta"].get("content", ""), c["finish_reason"]) for c in chunks[1:]]


async def test_stream_interval_batches_tokens_as_vllm_does(
    client: httpx.AsyncClient, config: StandinConfig
) -> None:
    """vLLM's per-request `stream_interval`: the first token's chunk at once, then one chunk per
    N tokens, the rest with the last chunk; the text is the same as one token per chunk."""
    one = await client.post("/v1/chat/completions", json=chat(config, "Hi?", max_tokens=11, stream=True))
    four = await client.post(
        "/v1/chat/completions", json=chat(config, "Hi?", max_tokens=11, stream=True, stream_interval=4)
    )
    singles, batched = _content_chunks(one.text), _content_chunks(four.text)
    assert len(singles) == 12 and all(reason is None for _, reason in singles[:-1])
    tokens = [text for text, _ in singles[:-1]]
    # 11 tokens: 1, then 4, 4, then the last 2 with the finishing chunk.
    assert [text for text, _ in batched] == [
        tokens[0],
        "".join(tokens[1:5]),
        "".join(tokens[5:9]),
        "".join(tokens[9:]),
    ]
    assert batched[-1][1] == "length"


@pytest.mark.parametrize("bad", [0, -1, "2", True, 1.5])
async def test_stream_interval_must_be_a_positive_integer(
    client: httpx.AsyncClient, config: StandinConfig, bad: object
) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=chat(config, "Hi?", stream=True, stream_interval=bad)
    )
    assert resp.status_code == 400 and "stream_interval" in resp.text
