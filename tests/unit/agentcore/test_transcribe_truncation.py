"""A transcription the model cuts at max_tokens (finish_reason `length`) is never stored as if it
were whole: it is asked again with more room (within the context), a lecture segment is then split
in halves, a lecture that stays cut short is rejected with a reason, and a voice question's
transcript that stays cut short is shown and remembered marked as such. Against the real stand-in
(in-process), forcing the cut with its `transcription_max_tokens` option."""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from mutagen.id3 import ID3, TXXX
from synapscribe import keys
from synapscribe.agentcore import media
from synapscribe.agentcore.app import prepare_transcript
from synapscribe.agentcore.vllm_client import TRANSCRIBE_RETRY_FACTOR, TRUNCATED_MARK, VllmClient
from synapscribe.platform import PlatformConfig
from synapscribe_local import audiogen
from synapscribe_local.standin.answers import PREFIX
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.server import create_app as create_standin
from synapscribe_local.standin.tokens import split_text

from .pipeline_rig import OWNER, check_order, transcript_of


def _stand_in_tokens(text: str) -> int:
    """How many tokens the stand-in writes to transcribe audio saying `text`."""
    return len(split_text(PREFIX + text))


def _retagged(mp3: bytes, text: str) -> bytes:
    """The same audio, saying (as far as the stand-in can tell) `text`."""
    frames = media.parse_mp3(mp3).frames
    tags = ID3()
    tags.add(TXXX(encoding=3, desc=audiogen.TEXT_TAG, text=[text]))
    out = io.BytesIO()
    tags.save(out, v2_version=4, padding=lambda info: 0)
    return out.getvalue() + b"".join(mp3[o : o + n] for o, n in frames)


class _Client:
    """A VllmClient over an in-process stand-in, with the chat completion bodies it sent."""

    def __init__(self, config: StandinConfig) -> None:
        app = create_standin(config)
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Recording(httpx2.AsyncBaseTransport):
            inner = httpx2.ASGITransport(app=app)

            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                if not request.url.path.endswith("/chat/completions"):
                    return await self.inner.handle_async_request(request)
                bodies.append(json.loads(await request.aread()))
                response = await self.inner.handle_async_request(request)
                content = await response.aread()
                if response.status_code == 200:
                    bodies[-1]["_usage"] = json.loads(content)["usage"]
                return httpx2.Response(response.status_code, headers=response.headers, content=content)

        self.vllm = VllmClient(
            "http://vllm.test/v1",
            config.served_name,
            None,
            5.0,
            http_client=httpx2.AsyncClient(transport=Recording()),
        )


LONG_QUESTION = " ".join(f"Part {i} of a long and very detailed question about rubisco." for i in range(12))


async def test_cut_at_max_tokens_is_asked_again_with_more_room(question_file: bytes) -> None:
    clip = _retagged(question_file, LONG_QUESTION)
    c = _Client(StandinConfig.from_platform())
    assert _stand_in_tokens(LONG_QUESTION) > 64
    result = await c.vllm.transcription(clip, "mp3", 1.5, 64)
    assert result.complete and result.text == PREFIX + LONG_QUESTION
    assert [b["max_tokens"] for b in c.bodies] == [64, 64 * TRANSCRIBE_RETRY_FACTOR]
    await c.vllm.aclose()


async def test_the_retry_never_asks_for_more_than_the_context_leaves(question_file: bytes) -> None:
    clip = _retagged(question_file, LONG_QUESTION)
    config = dataclasses.replace(StandinConfig.from_platform(), max_model_len=420)
    c = _Client(config)
    result = await c.vllm.transcription(clip, "mp3", 1.5, 100)
    # The stand-in refuses (HTTP 400) anything over its context, so this also proves it fit.
    assert result.complete
    first, retry = c.bodies
    assert first["max_tokens"] == 100 and first["_usage"]["completion_tokens"] == 100
    # All the room the prompt leaves, which is less than TRANSCRIBE_RETRY_FACTOR times as much.
    assert retry["max_tokens"] == config.max_model_len - first["_usage"]["prompt_tokens"]
    assert 100 < retry["max_tokens"] < 100 * TRANSCRIBE_RETRY_FACTOR
    await c.vllm.aclose()


async def test_still_cut_short_is_reported_not_hidden(question_file: bytes) -> None:
    config = dataclasses.replace(StandinConfig.from_platform(), transcription_max_tokens=3)
    c = _Client(config)
    result = await c.vllm.transcription(question_file, "mp3", 1.5, 64)
    assert not result.complete and result.max_tokens == 64 * TRANSCRIBE_RETRY_FACTOR
    assert result.text == "".join(split_text(PREFIX + "What does rubisco fix?")[:3]).strip()
    assert await c.vllm.transcribe(question_file, "mp3", 1.5, 64) == f"{result.text} {TRUNCATED_MARK}"
    # Not cut: no retry and no mark.
    whole = _Client(StandinConfig.from_platform())
    assert await whole.vllm.transcribe(question_file, "mp3", 1.5, 64) == PREFIX + "What does rubisco fix?"
    assert len(whole.bodies) == 1
    await c.vllm.aclose()
    await whole.vllm.aclose()


def cut_transcriptions_at(limit: int) -> Callable[[StandinConfig], Any]:
    """make_rig's `standin=`: the stand-in, with transcriptions forced to stop after `limit` tokens."""
    return lambda config: create_standin(dataclasses.replace(config, transcription_max_tokens=limit))


async def test_a_voice_question_cut_short_is_answered_with_its_transcript_marked(
    make_rig: Any, question_file: bytes
) -> None:
    async with make_rig(standin=cut_transcriptions_at(3)) as rig:
        session_id = rig.session()
        messages = await rig.ask(session_id, audio=base64.b64encode(question_file).decode())
        answer = check_order(messages, voice_in=True)
        assert answer["type"] == "answer", answer
        heard = transcript_of(messages)
        assert heard.endswith(TRUNCATED_MARK) and heard != PREFIX + "What does rubisco fix?"
        # The answer was made from the question's audio, so it is whole.
        assert "You asked: What does rubisco fix?" in answer["text"]
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None and stored["history"][-1]["question"] == heard


def _lecture_limits(lecture: bytes, platform: PlatformConfig) -> tuple[int, int]:
    """(the fewest tokens of any item's transcript, the most of any half item's)."""
    items = media.cut_mp3(lecture, platform.audio.max_item_seconds)
    whole = min(_stand_in_tokens(audiogen.embedded_text(i.data) or "") for i in items)
    halves = [h for i in items for h in media.split_mp3(i.data, 2)]
    return whole, max(_stand_in_tokens(audiogen.embedded_text(h.data) or "") for h in halves)


def _transcribing(rig: Any) -> str:
    lecture_id = str(rig.lecture["lectureId"])
    rig.store.update_lecture(lecture_id, {"status": "transcribing", "contextMode": "transcript"})
    return lecture_id


async def test_a_lecture_segment_cut_short_is_transcribed_in_halves(
    make_rig: Any, lecture_file: bytes, platform: PlatformConfig
) -> None:
    whole, half = _lecture_limits(lecture_file, platform)
    assert half < whole  # a cap between the two cuts every item but no half
    async with make_rig(standin=cut_transcriptions_at(half)) as rig:
        lecture_id = _transcribing(rig)
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready", stored
        segments = json.loads(
            rig.s3.get_object(Bucket=rig.bucket, Key=stored["transcriptKey"])["Body"].read()
        )["segments"]
        assert len(segments) == 4  # two items, each in two halves
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segments))
        assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(90, abs=0.5)
        # Every sentence of the source is heard exactly once: nothing cut, nothing twice.
        heard = " ".join(s["text"] for s in segments)
        for cue in audiogen.embedded_timeline(lecture_file) or []:
            assert cue.text in heard
        cues = audiogen.embedded_timeline(lecture_file) or []
        assert heard.count("Welcome to today's lecture") == sum("Welcome to today's" in c.text for c in cues)


async def test_a_lecture_that_stays_cut_short_is_rejected_with_a_reason(make_rig: Any) -> None:
    async with make_rig(standin=cut_transcriptions_at(5)) as rig:
        lecture_id = _transcribing(rig)
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "rejected"
        assert "could not be transcribed completely" in stored["reason"]
        assert "stopped at its" in stored["reason"] and "00:" in stored["reason"]
        [pushed] = rig.gateway.messages["c-up"]
        assert pushed["status"] == "rejected" and pushed["reason"] == stored["reason"]
        listed = rig.s3.list_objects_v2(Bucket=rig.bucket, Prefix=keys.transcript_key(lecture_id))
        assert listed.get("KeyCount", 0) == 0  # no truncated transcript stored
