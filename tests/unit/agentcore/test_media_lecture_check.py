"""A lecture is never served shorter than its measured duration: junk inside the recording is
skipped (the items still cover all of it), and a recording that yields less audio than measured
(MP3 cut as it is, WAV converted by ffmpeg) is rejected with a reason instead, in audio mode at
the first question and in transcript mode when it is transcribed. In-process: real stand-in, moto."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from required_tools import require_tools
from synapscribe import keys
from synapscribe.agentcore import media
from synapscribe.agentcore.app import prepare_transcript

from .pipeline_rig import OWNER, check_order


def _with_junk(mp3: bytes) -> bytes:
    frames = media.parse_mp3(mp3).frames
    mid = frames[len(frames) // 2][0]
    return mp3[:mid] + b"junk-junk-12" + mp3[mid:]


def _first_half(mp3: bytes) -> bytes:
    """An upload that stopped halfway (the measured duration still says 90 s)."""
    frames = media.parse_mp3(mp3).frames
    return mp3[: frames[len(frames) // 2][0]]


def _wav(mp3: bytes) -> bytes:
    require_tools("ffmpeg")
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", "pipe:0", "-ac", "1", "-ar", "16000", "-f", "wav",
         "pipe:1"],
        input=mp3,
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


def _manifest(rig: Any) -> dict[str, Any] | None:
    key = keys.segments_prefix(rig.lecture["lectureId"], rig.platform) + "manifest.json"
    try:
        body = rig.s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read()
    except rig.s3.exceptions.NoSuchKey:
        return None
    return dict(json.loads(body))


async def test_junk_inside_an_audio_lecture_is_skipped_and_all_of_it_is_served(
    make_rig: Any, lecture_file: bytes
) -> None:
    async with make_rig(lecture_bytes=_with_junk(lecture_file)) as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer", answer
        assert "read 2 audio item(s)" in answer["text"]
        manifest = _manifest(rig)
        assert manifest is not None
        covered = sum(i["end"] - i["start"] for i in manifest["items"])
        assert covered == pytest.approx(media.parse_mp3(lecture_file).seconds, abs=0.05)
        stored = rig.store.get_lecture(rig.lecture["lectureId"], OWNER)
        assert stored is not None and stored["status"] == "ready"


def _assert_rejected_on_query(rig: Any, messages: list[dict[str, Any]]) -> None:
    final = messages[-1]
    assert final["type"] == "error" and final["code"] == "unsupported_media", final
    assert "could be read as audio" in final["message"] and "upload it again" in final["message"]
    stored = rig.store.get_lecture(rig.lecture["lectureId"], OWNER)
    assert stored is not None and stored["status"] == "rejected"
    assert "only 45." in stored["reason"] and "measured 90.0 s" in stored["reason"]
    assert _manifest(rig) is None  # nothing truncated was stored
    # The uploader's connection (make_rig's lecture was uploaded on c0) hears of the rejection.
    [pushed] = rig.gateway.messages["c0"]
    assert pushed["type"] == "lecture" and pushed["status"] == "rejected"
    assert pushed["reason"] == stored["reason"]
    assert rig.vllm_bodies == []  # and nothing was asked of the model


async def test_an_mp3_lecture_shorter_than_measured_is_rejected_not_served(
    make_rig: Any, lecture_file: bytes
) -> None:
    async with make_rig(lecture_bytes=_first_half(lecture_file)) as rig:
        session = rig.session()
        answered = await rig.ask(session, connection="c-q", text="What does rubisco fix?")
        assert answered == rig.gateway.messages["c-q"], "the error carries the query's requestId"
        _assert_rejected_on_query(rig, answered)
        [again] = await rig.ask(session, connection="c-q", text="And the Calvin cycle?")
        assert again["type"] == "error" and again["code"] == "lecture_not_ready", again
        assert "rejected" in again["message"] and "upload it again" in again["message"]


async def test_a_wav_lecture_is_checked_the_same_way(make_rig: Any, lecture_file: bytes) -> None:
    wav = await asyncio.to_thread(_wav, lecture_file)
    async with make_rig(lecture_bytes=wav) as rig:
        answer = check_order(await rig.ask(rig.session(), text="What does rubisco fix?"), voice_in=False)
        assert answer["type"] == "answer", answer
    # The same WAV cut off halfway, its header still claiming all of it.
    async with make_rig(lecture_bytes=wav[: len(wav) // 2]) as rig:
        await rig.ask(rig.session(), connection="c-q", text="What does rubisco fix?")
        _assert_rejected_on_query(rig, rig.gateway.messages["c-q"])


async def test_a_transcript_mode_lecture_shorter_than_measured_is_rejected_with_a_reason(
    make_rig: Any, lecture_file: bytes
) -> None:
    async with make_rig(lecture_bytes=_first_half(lecture_file)) as rig:
        lecture_id = rig.lecture["lectureId"]
        rig.store.update_lecture(lecture_id, {"status": "transcribing", "contextMode": "transcript"})
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "rejected"
        assert stored["reason"].startswith("The lecture could not be read completely: only 45.")
        [pushed] = rig.gateway.messages["c-up"]
        assert pushed["status"] == "rejected" and pushed["reason"] == stored["reason"]
        assert rig.vllm_bodies == []


def test_half_an_upload_is_what_the_check_sees(lecture_file: bytes) -> None:
    """The fixtures above mean what they say: the cut file holds half the measured 90 s."""
    assert media.parse_mp3(_first_half(lecture_file)).seconds == pytest.approx(45, abs=0.1)
