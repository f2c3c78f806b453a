"""The stand-in models vLLM's media by reference (vLLM 0.32, measured: design facts, round three):
a part carrying a `uuid` is cached under it; `{"input_audio": null, "uuid": ...}` is served from the
multimodal processor cache, or refused with vLLM's own 400 when the cache does not hold it (never
held, or evicted: the cache is an LRU)."""

from __future__ import annotations

import dataclasses
from typing import Any

from chat_parts import audio_part, make_wav
from synapscribe_local.standin.config import StandinConfig

from .standin_support import chat, make_client, metric

MISS = "Cache miss for audio at index {} but data is not provided."


def with_uuid(data: bytes, uuid: str) -> dict[str, Any]:
    return {**audio_part(data), "uuid": uuid}


def by_reference(uuid: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": None, "uuid": uuid}


async def test_an_item_sent_with_its_uuid_is_then_served_by_the_uuid_alone() -> None:
    config = StandinConfig.from_platform()
    a, b = make_wav(1.0, seed=1), make_wav(2.0, seed=2)
    async with make_client(config) as client:
        full = await client.post(
            "/v1/chat/completions", json=chat(config, [with_uuid(a, "lec-0"), with_uuid(b, "lec-1")])
        )
        assert full.status_code == 200, full.text
        ref = await client.post(
            "/v1/chat/completions", json=chat(config, [by_reference("lec-0"), by_reference("lec-1")])
        )
        assert ref.status_code == 200, ref.text
        # The same prompt: the same tokens, and every block of the first request hit again.
        assert ref.json()["usage"]["prompt_tokens"] == full.json()["usage"]["prompt_tokens"]
        text = (await client.get("/metrics")).text
        assert metric(text, "vllm:mm_cache_hits_total") == 2


async def test_an_unknown_uuid_without_data_is_refused_as_vllm_refuses_it() -> None:
    config = StandinConfig.from_platform()
    async with make_client(config) as client:
        await client.post("/v1/chat/completions", json=chat(config, [with_uuid(make_wav(1.0), "known")]))
        refused = await client.post(
            "/v1/chat/completions", json=chat(config, [by_reference("known"), by_reference("unknown")])
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == MISS.format(1)
        # The data form of the same uuid is accepted, and makes it known.
        again = await client.post(
            "/v1/chat/completions", json=chat(config, [with_uuid(make_wav(1.5), "unknown")])
        )
        assert again.status_code == 200
        assert (
            await client.post("/v1/chat/completions", json=chat(config, [by_reference("unknown")]))
        ).status_code == 200


async def test_the_processor_cache_is_an_lru_and_an_evicted_item_is_a_cache_miss() -> None:
    config = dataclasses.replace(StandinConfig.from_platform(), mm_cache_items=2)
    async with make_client(config) as client:
        for n in range(3):
            body = chat(config, [with_uuid(make_wav(1.0, seed=n), f"item-{n}")])
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        evicted = await client.post("/v1/chat/completions", json=chat(config, [by_reference("item-0")]))
        assert evicted.status_code == 400 and evicted.json()["error"]["message"] == MISS.format(0)
        for n in (1, 2):
            held = await client.post("/v1/chat/completions", json=chat(config, [by_reference(f"item-{n}")]))
            assert held.status_code == 200, held.text


async def test_the_uuid_is_the_items_hash_so_data_without_it_misses_the_prefix_cache() -> None:
    """vLLM hashes an item by its uuid when it has one, by its bytes otherwise: the two forms of one
    item share no cached block (the engine recomputed everything: 15.5 s against 0.1 s)."""
    config = StandinConfig.from_platform()
    data = make_wav(10.0, seed=3)  # 250 audio tokens
    async with make_client(config) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        cache = app.state.engine.prefix_cache
        await client.post("/v1/chat/completions", json=chat(config, [with_uuid(data, "u")]))
        hits = cache.hits_total
        await client.post("/v1/chat/completions", json=chat(config, [by_reference("u")]))
        ref_hits = cache.hits_total - hits
        hits = cache.hits_total
        await client.post("/v1/chat/completions", json=chat(config, [audio_part(data)]))
        content_hits = cache.hits_total - hits
    assert ref_hits > 250  # the audio's blocks and the template's before them
    assert content_hits < ref_hits - 250  # only the template's blocks before the audio
