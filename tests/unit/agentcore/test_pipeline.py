"""The query pipeline in-process (pipeline_rig.py): the real stand-in app (ASGI), moto for
S3/DynamoDB, fake TTS and a recording @connections client. Every pushed message is checked against
the contract."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from synapscribe import keys, planner
from synapscribe.agentcore import citations
from synapscribe.platform import PlatformConfig
from synapscribe_local import audiogen
from synapscribe_local.standin.config import Latency
from synapscribe_local.standin.server import create_app as create_standin

from .pipeline_rig import FAKE_MP3, OWNER, Rig, check_order, transcript_of, tts_down


async def test_text_query_streams_text_then_speech_in_order(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        messages = await rig.ask(session_id, text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer"
        deltas = [m["text"] for m in messages if m["type"] == "answerDelta"]
        assert "".join(deltas).strip() == answer["text"]
        assert "You asked: What does rubisco fix?" in answer["text"]
        audio = [m for m in messages if m["type"] == "audio"]
        assert [m["seq"] for m in audio] == list(range(len(audio))) and len(audio) >= 2
        assert answer["audio"] == [m["url"] for m in audio]
        assert answer["ttsEngine"] == "espeak-ng"
        # Spoken: the answer without its citation markers ("[from 00:00-00:45]" is shown, not read).
        assert " ".join(m["text"] for m in audio) == citations.MARKER_RE.sub("", answer["text"])
        assert answer["citations"] and "[from " in answer["text"]
        for seq in range(len(audio)):
            key = keys.response_key(session_id, answer["requestId"], seq, rig.platform)
            assert rig.s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read() == FAKE_MP3
        t = answer["timings"]
        assert t["asrMs"] is None if "asrMs" in t else True
        assert 0 <= t["firstTokenMs"] <= t["firstAudioMs"] <= t["totalMs"]
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None
        assert stored["history"][-1]["question"] == "What does rubisco fix?"
        assert stored["history"][-1]["answer"] == answer["text"]
        # Its citations too, as pairs (what `getSession` gives back to a reopened page).
        pairs = [[c["startSeconds"], c["endSeconds"]] for c in answer["citations"]]
        assert stored["history"][-1]["citations"] == pairs
        # The lecture went in as stored items of at most max_item_seconds each.
        lecture_parts = rig.vllm_bodies[-1]["messages"][1]["content"]
        audio_parts = [p for p in lecture_parts if p["type"] == "input_audio"]
        assert len(audio_parts) == 2
        assert all("_seconds" not in p for p in audio_parts)


async def test_voice_query_sends_its_transcript_and_answers_the_audio(
    make_rig: Any, question_file: bytes
) -> None:
    import base64

    async with make_rig() as rig:
        session_id = rig.session()
        clip = base64.b64encode(question_file).decode()
        messages = await rig.ask(session_id, audio=clip)
        answer = check_order(messages, voice_in=True)
        assert answer["type"] == "answer", answer
        assert transcript_of(messages) == "[stand-in] What does rubisco fix?"
        assert answer["timings"]["asrMs"] is not None
        # Two model requests: the answer with the question's audio, and its transcription.
        kinds = sorted(
            "transcribe" if "Transcribe" in json.dumps(b["messages"][-1]) else "answer"
            for b in rig.vllm_bodies
        )
        assert kinds == ["answer", "transcribe"]
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None and stored["history"][-1]["question"] == "[stand-in] What does rubisco fix?"


async def test_first_audio_does_not_wait_for_a_slow_transcription(
    make_rig: Any, question_file: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: the answer's text and speech go out while the question is still being
    transcribed; the transcript follows whenever it is ready, before the final answer, and is
    the question kept in history."""
    import base64

    slow = Latency(transcription_seconds=1.0)
    async with make_rig(
        standin=lambda config: create_standin(dataclasses.replace(config, latency=slow))
    ) as rig:
        session_id = rig.session()
        messages = await rig.ask(session_id, audio=base64.b64encode(question_file).decode())
        answer = check_order(messages, voice_in=True)
        assert answer["type"] == "answer", answer
        types = [m["type"] for m in messages]
        at = types.index("transcript")
        assert "audio" in types[:at] and "answerDelta" in types[:at], types
        assert types[at + 1 :] == ["answer"], types  # the answer was complete; only the final waited
        t = answer["timings"]
        assert t["firstAudioMs"] < t["asrMs"] <= t["totalMs"], t
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None
        assert (
            stored["history"][-1]["question"]
            == transcript_of(messages)
            == "[stand-in] What does rubisco fix?"
        )


async def test_follow_up_sees_the_earlier_turn_and_the_same_lecture_bytes(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        await rig.ask(session_id, text="Where does photosynthesis take place?")
        messages = await rig.ask(session_id, text="And what does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert (
            "Earlier in this conversation you asked: Where does photosynthesis take place?" in answer["text"]
        )
        first, second = rig.vllm_bodies[-2]["messages"], rig.vllm_bodies[-1]["messages"]
        assert (first[0], first[2]) == (second[0], second[2])  # system prompt, ack: byte for byte
        # The lecture's items: the same uuids, the follow-up without their data (media_refs.py).
        texts = [[p for p in m[1]["content"] if p["type"] == "text"] for m in (first, second)]
        audio = [[p for p in m[1]["content"] if p["type"] != "text"] for m in (first, second)]
        assert texts[0] == texts[1] and [p["uuid"] for p in audio[0]] == [p["uuid"] for p in audio[1]]
        assert audio[1] == [{"type": "input_audio", "input_audio": None, "uuid": p["uuid"]} for p in audio[0]]
        assert second[3] == {"role": "user", "content": "Where does photosynthesis take place?"}


async def test_a_foreign_or_unknown_session_is_not_found(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session(owner="eu-west-1:bob")
        for sid in (session_id, "ses_doesnotexist"):
            messages = await rig.ask(sid, text="Hello there?")
            assert [m["type"] for m in messages] == ["error"]
            assert messages[0]["code"] == "not_found"
        assert rig.vllm_bodies == []


async def test_tts_down_still_delivers_the_text_answer(make_rig: Any) -> None:
    async with make_rig(tts=tts_down) as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer" and answer["text"]
        assert answer["audio"] == [] and answer["ttsEngine"] == "none"
        assert not [m for m in messages if m["type"] == "audio"]


async def test_voice_false_skips_speech(make_rig: Any) -> None:
    async with make_rig() as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?", voice=False)
        answer = check_order(messages, voice_in=False)
        assert answer["audio"] == [] and "ttsEngine" not in answer


async def test_model_server_down_is_upstream_unavailable_at_once(make_rig: Any) -> None:
    async with make_rig(vllm_up=False) as rig:
        started = time.perf_counter()
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
        assert time.perf_counter() - started < 5
        assert [m["type"] for m in messages] == ["error"]
        assert messages[0]["code"] == "upstream_unavailable"
        assert "model server" in messages[0]["message"]


async def test_busy_when_no_slot_frees_in_time(make_rig: Any) -> None:
    async with make_rig(limit=1, queue_timeout=0.05) as rig:
        await rig.deps.admission.acquire()
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
        assert [m["type"] for m in messages] == ["error"]
        assert messages[0]["code"] == "busy"
        rig.deps.admission.release()


async def test_failed_preparation_keeps_its_error_while_every_slot_is_busy(make_rig: Any) -> None:
    """The answer's slot is asked for at acceptance, beside the preparation: a question refused
    by the preparation still gets that refusal, not `busy`, when no slot frees in time."""
    import base64

    async with make_rig(limit=1, queue_timeout=0.05) as rig:
        await rig.deps.admission.acquire()
        messages = await rig.ask(rig.session(), audio=base64.b64encode(b"definitely not audio").decode())
        assert [m["type"] for m in messages] == ["error"]
        assert messages[0]["code"] == "unsupported_media"
        rig.deps.admission.release()
        assert rig.deps.admission.in_flight == 0


async def test_bad_question_audio_is_refused_specifically(make_rig: Any) -> None:
    import base64

    async with make_rig() as rig:
        messages = await rig.ask(rig.session(), audio=base64.b64encode(b"definitely not audio").decode())
        assert messages[-1]["code"] == "unsupported_media"
        messages = await rig.ask(rig.session(), queryKey=f"queries/eu-west-1:bob/qry_{'a' * 8}.mp3")
        assert messages[-1]["code"] == "not_found"


async def test_long_history_is_trimmed_oldest_first_never_over_the_context(
    make_rig: Any, platform: PlatformConfig, tmp_path: Path
) -> None:
    small = platform.with_max_model_len(4096)
    short = await asyncio.to_thread(
        lambda: audiogen.make_lecture(tmp_path / "short.mp3", 0.5).path.read_bytes()
    )
    async with make_rig(p=small, lecture_bytes=short, duration=30.0) as rig:
        session_id = rig.session()
        for i in range(16):
            turn = {
                "question": f"Question number {i}? " + "padding " * 100,
                "answer": f"Answer {i}. " + "words " * 100,
            }
            rig.store.append_turn(session_id, turn)
        messages = await rig.ask(session_id, text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer", answer  # the stand-in refuses anything over 4096 tokens
        sent = json.dumps(rig.vllm_bodies[-1]["messages"])
        assert "Question number 15?" in sent
        assert "Question number 0?" not in sent
        assert rig.vllm_bodies[-1]["messages"][1]["content"][1]["type"] == "text"  # the lecture stayed


async def test_gone_connection_stops_pushing(make_rig: Any) -> None:
    async with make_rig() as rig:
        rig.gateway.gone.add("c-gone")
        messages = await rig.ask(rig.session(), connection="c-gone", text="What does rubisco fix?")
        assert messages == []
        await asyncio.sleep(0)


async def _transcribing(rig: Rig) -> str:
    lecture_id = rig.lecture["lectureId"]
    rig.store.update_lecture(lecture_id, {"status": "transcribing", "contextMode": "transcript"})
    return lecture_id


async def test_transcript_mode_lecture_is_transcribed_in_segments(make_rig: Any, lecture_file: bytes) -> None:
    from synapscribe.agentcore.app import prepare_transcript

    async with make_rig() as rig:
        lecture_id = await _transcribing(rig)
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready" and stored["contextMode"] == "transcript"
        [pushed] = rig.gateway.messages["c-up"]
        assert pushed == {
            "type": "lecture",
            "lectureId": lecture_id,
            "status": "ready",
            "durationSeconds": 90.0,
            "contextMode": "transcript",
        }
        body = rig.s3.get_object(Bucket=rig.bucket, Key=stored["transcriptKey"])["Body"].read()
        segments = json.loads(body)["segments"]
        assert len(segments) == 2 and segments[0]["start"] == 0
        assert segments[0]["end"] == segments[1]["start"]
        assert "Welcome to today's lecture on photosynthesis." in segments[0]["text"]
        # Each segment says its own part: every sentence of the source is heard exactly once.
        cues = audiogen.embedded_timeline(lecture_file) or []
        heard = " ".join(seg["text"] for seg in segments)
        assert heard.count("Welcome to today's lecture") == sum("Welcome to today's" in c.text for c in cues)
        # Questions are then answered over the timestamped text, without audio items.
        rig.lecture = stored
        session_id = rig.session()
        messages = await rig.ask(session_id, text="What does rubisco fix?")
        answer = check_order(messages, voice_in=False)
        assert "read 0 audio item(s)" in answer["text"]
        lecture_text = rig.vllm_bodies[-1]["messages"][1]["content"]
        assert lecture_text.startswith("The lecture, as a transcript with timestamps:\n[00:00-00:4")
        # A second call finds the lecture ready and changes nothing.
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        assert len(rig.gateway.messages["c-up"]) == 1


async def test_transcription_failure_rejects_with_a_reason(make_rig: Any) -> None:
    from synapscribe.agentcore.app import prepare_transcript

    async with make_rig(vllm_up=False) as rig:
        lecture_id = await _transcribing(rig)
        await prepare_transcript(rig.deps, lecture_id, None)  # falls back to the lecture's connection
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "rejected"
        assert "model server" in stored["reason"]
        [pushed] = rig.gateway.messages["c0"]
        assert pushed["status"] == "rejected" and pushed["reason"] == stored["reason"]


async def test_transcript_over_the_context_is_rejected_naming_the_limit(
    make_rig: Any, platform: PlatformConfig, tmp_path: Path
) -> None:
    from synapscribe.agentcore.app import prepare_transcript

    small = platform.with_max_model_len(4096)
    # Planned from its duration the lecture fits as a transcript; the model's count says it does not.
    assert planner.plan_lecture(7.5 * 60, small).mode == "transcript"
    long = await asyncio.to_thread(
        lambda: audiogen.make_lecture(tmp_path / "long.mp3", 7.5).path.read_bytes()
    )
    async with make_rig(p=small, lecture_bytes=long) as rig:
        lecture_id = await _transcribing(rig)
        await prepare_transcript(rig.deps, lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "rejected"
        assert f"at most {small.lecture_token_budget}" in stored["reason"]
        assert rig.gateway.messages["c-up"][0]["status"] == "rejected"


DATA = Path(__file__).parents[1] / "data"


def _safari_like_aac(tmp: Path) -> bytes:
    """Safari's MediaRecorder output: fragmented MP4 (moov first, then moof/mdat) with AAC."""
    wav = audiogen.speak("What does rubisco fix?", tmp / "q.wav", "wav").path
    out = tmp / "q.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "32k",
         "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


@pytest.mark.parametrize(
    ("recording", "fmt", "seconds"),
    [
        # Chromium 156's MediaRecorder at 16 kbit/s (2.5 s of the fake microphone): WebM/Opus with
        # no duration in its header, and its MP4 (Opus in MP4).
        ("chromium-156-question.webm", "webm", 2.5),
        ("chromium-156-question-opus.m4a", "m4a", 2.5),
        ("safari-like", "m4a", 1.6),
    ],
)
async def test_browser_recordings_are_heard_as_questions(
    make_rig: Any, tmp_path: Path, recording: str, fmt: str, seconds: float
) -> None:
    import base64

    from synapscribe.audio.formats import sniff

    data = _safari_like_aac(tmp_path) if recording == "safari-like" else (DATA / recording).read_bytes()
    assert sniff(data) == sniff(data[:64]) == fmt
    async with make_rig() as rig:
        messages = await rig.ask(rig.session(), audio=base64.b64encode(data).decode())
    answer = check_order(messages, voice_in=True)
    assert answer["type"] == "answer", answer
    # The model server got MP3 (what vLLM decodes) of the recording's length: the stand-in says
    # how much audio it decoded, since a browser recording carries no embedded text.
    heard = re.fullmatch(
        r"\[stand-in\] \(inaudible: no embedded text; ([\d.]+) s of audio\)", transcript_of(messages)
    )
    assert heard and abs(float(heard.group(1)) - seconds) < 0.35, messages
    question = rig.vllm_bodies[-1]["messages"][-1]["content"]
    assert [p["input_audio"]["format"] for p in question if p["type"] == "input_audio"] == ["mp3"]
