"""Lecture items by reference (agentcore/media_refs.py) in the query pipeline, against the stand-in,
which refuses an unknown uuid as vLLM does: the first question sends the items' data, follow-ups
their uuids alone (under 2 KB of lecture), every request names each item by the same uuid, a
server that lost its cache is answered through one resend, and the planner counts the same."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synapscribe import planner
from synapscribe.agentcore import media_refs, prompts
from synapscribe.agentcore.prompts import LectureAudioItem
from synapscribe.agentcore.vllm_client import MediaCacheMissError, VllmClient
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.server import create_app as create_standin

from .pipeline_rig import check_order


def lecture_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The audio parts of the request's lecture message (the second message)."""
    return [p for p in body["messages"][1]["content"] if p["type"] == "input_audio"]


def lecture_bytes(body: dict[str, Any]) -> int:
    return len(json.dumps(body["messages"][1]).encode())


def capturing() -> tuple[dict[str, Any], Any]:
    apps: dict[str, Any] = {}

    def make(config: StandinConfig) -> Any:
        apps["standin"] = create_standin(config)
        return apps["standin"]

    return apps, make


async def test_follow_ups_send_the_lecture_by_uuid_and_still_hit_the_prefix_cache(make_rig: Any) -> None:
    apps, make = capturing()
    async with make_rig(standin=make) as rig:
        session_id = rig.session()
        engine = apps["standin"].state.engine
        for question in ("What is rubisco?", "Say that again?", "And the Calvin cycle?"):
            before = engine.prefix_cache.hits_total
            final = check_order(await rig.ask(session_id, text=question, voice=False), voice_in=False)
            assert final["type"] == "answer", final
            hits = engine.prefix_cache.hits_total - before
        bodies = rig.vllm_bodies
        items = await rig.deps.lectures.audio_items(rig.lecture)
    first, *follow_ups = [lecture_parts(b) for b in bodies]
    uuids = [p["uuid"] for p in first]
    assert len(uuids) == 2 and len(set(uuids)) == 2  # a 1.5-minute lecture: two items
    assert all(p["input_audio"]["data"] for p in first)
    for parts in follow_ups:
        assert [p["uuid"] for p in parts] == uuids  # the same names every turn: never mixed forms
        assert all(p["input_audio"] is None for p in parts)
    assert all(lecture_bytes(b) < 2048 for b in bodies[1:]), [lecture_bytes(b) for b in bodies]
    assert lecture_bytes(bodies[0]) > 100_000
    lecture_tokens = sum(
        planner.audio_part_tokens(p)
        for p in prompts.lecture_audio_message(items)["content"]
        if p["type"] == "input_audio"
    )
    assert hits >= lecture_tokens  # the last follow-up reused the lecture's blocks


async def test_a_server_that_lost_the_items_is_answered_through_one_resend(make_rig: Any) -> None:
    apps, make = capturing()
    async with make_rig(standin=make) as rig:
        session_id = rig.session()
        await rig.ask(session_id, text="What is rubisco?", voice=False)
        apps["standin"].state.engine.mm_cache.clear()  # the server restarted: its cache is empty
        final = check_order(await rig.ask(session_id, text="Say that again?", voice=False), voice_in=False)
        assert final["type"] == "answer", final
        after = check_order(await rig.ask(session_id, text="And then?", voice=False), voice_in=False)
        assert after["type"] == "answer", after
        bodies, resends = rig.vllm_bodies, rig.deps.held.resends
    forms = [["data" if p["input_audio"] else "uuid" for p in lecture_parts(b)] for b in bodies]
    # data (first), uuid (refused), data (the resend), uuid (held again): each request one form.
    assert forms == [["data"] * 2, ["uuid"] * 2, ["data"] * 2, ["uuid"] * 2], forms
    assert resends == 1


def test_the_reference_form_counts_as_the_data_form_for_the_planner() -> None:
    items = [LectureAudioItem(0.0, 60.0, "QUJD", "mp3", (960_000, 16_000), "lec-0-ab"),
             LectureAudioItem(60.0, 90.0, "REVG", "mp3", None, "lec-1-cd")]  # fmt: skip
    full = prompts.lecture_audio_message(items)
    ref = prompts.lecture_audio_message(items, by_reference=True)
    assert planner.estimate_message_tokens(full) == planner.estimate_message_tokens(ref)
    wire = prompts.wire_messages([ref])[0]["content"]
    assert [p for p in wire if p["type"] == "input_audio"] == [
        {"type": "input_audio", "input_audio": None, "uuid": "lec-0-ab"},
        {"type": "input_audio", "input_audio": None, "uuid": "lec-1-cd"},
    ]
    with pytest.raises(ValueError, match="needs its uuid"):
        prompts.audio_part("QUJD", "mp3", 1.0, by_reference=True)


def test_an_items_uuid_names_its_lecture_place_and_bytes() -> None:
    a = media_refs.item_uuid("lec_1", 0, b"abc")
    assert a == media_refs.item_uuid("lec_1", 0, b"abc")
    assert len({a, media_refs.item_uuid("lec_1", 1, b"abc"), media_refs.item_uuid("lec_1", 0, b"abd"),
                media_refs.item_uuid("lec_2", 0, b"abc")}) == 4  # fmt: skip


def test_held_media_is_an_lru_of_uuids() -> None:
    held = media_refs.HeldMedia(capacity=2)
    a, b, c = (LectureAudioItem(0, 1, "", "mp3", None, f"lec_{n}-0-x") for n in "abc")
    held.remember([a, b])
    assert held.holds([a, b]) and held.lectures() == {"lec_a", "lec_b"}
    held.remember([c])
    assert not held.holds([a]) and held.holds([b, c])
    held.forget([b])
    assert not held.holds([b, c])
    assert not held.holds([]) and not held.holds([LectureAudioItem(0, 1, "", "mp3")])


async def test_the_cache_miss_refusal_is_told_apart_from_other_refusals() -> None:
    import httpx2

    def refuse(request: httpx2.Request) -> httpx2.Response:
        message = "Cache miss for audio at index 0 but data is not provided."
        return httpx2.Response(
            400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}}
        )

    client = VllmClient(
        "http://v.test/v1", "m", None, 5.0, httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))
    )
    try:
        with pytest.raises(MediaCacheMissError):
            async for _ in client.stream_answer([{"role": "user", "content": "hi"}], 8):
                pass
    finally:
        await client.aclose()
