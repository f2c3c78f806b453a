"""Nothing silently truncated, on the real runtime on loopback (AgentCore, the stand-in and TTS as
processes, moto): the stand-in started with `--transcription-max-tokens` cuts every transcription
short, so a voice question's transcript arrives marked as cut short (its answer whole) and a
transcript-mode lecture is rejected with a reason instead of being stored truncated; a lecture with
junk bytes inside is still served whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from synapscribe import keys
from synapscribe.agentcore import media
from synapscribe.agentcore.vllm_client import TRUNCATED_MARK
from synapscribe_local import audiogen
from synapscribe_local.harness import AgentCoreRig, agentcore_rig

pytestmark = [pytest.mark.integration, pytest.mark.needs_tool("espeak-ng", "sox", "ffmpeg")]

OWNER = "eu-west-1:student-1"


@pytest.fixture(scope="module")
def st() -> Iterator[AgentCoreRig]:
    with agentcore_rig(standin_args=["--transcription-max-tokens", "5"]) as s:
        yield s
        assert s.receiver.invalid == []


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audiogen.make_lecture(tmp_path_factory.mktemp("lec") / "lecture.mp3", 1.0).path


def test_voice_question_transcript_cut_short_is_marked_and_answered(
    st: AgentCoreRig, lecture: Path, tmp_path: Path
) -> None:
    stored = st.put_lecture(OWNER, lecture)
    assert stored["contextMode"] == "audio"
    session_id = st.start_session(OWNER, stored)
    clip = audiogen.speak("What does rubisco fix?", tmp_path / "q.mp3").path.read_bytes()
    messages = st.ask(OWNER, session_id, "conn-q", audio=clip)
    assert messages[-1]["type"] == "answer", messages[-1]
    [heard] = [m["text"] for m in messages if m["type"] == "transcript"]
    assert heard.endswith(TRUNCATED_MARK)
    assert "You asked: What does rubisco fix?" in messages[-1]["text"]
    history = st.store.get_session(session_id, OWNER)
    assert history is not None and history["history"][-1]["question"] == heard


def test_lecture_transcription_cut_short_is_rejected_with_a_reason(st: AgentCoreRig, lecture: Path) -> None:
    stored = st.put_lecture(OWNER, lecture, connection_id="conn-up")
    lecture_id = stored["lectureId"]
    # Planned as audio from its length; transcribed here as a transcript-mode lecture would be.
    st.store.update_lecture(lecture_id, {"status": "transcribing", "contextMode": "transcript"})
    pushed = st.transcribe(lecture_id, "conn-up", timeout=60)
    assert pushed["status"] == "rejected", pushed
    assert "could not be transcribed completely" in pushed["reason"]
    listed = st.s3.list_objects_v2(Bucket=st.bucket, Prefix=keys.transcript_key(lecture_id))
    assert listed.get("KeyCount", 0) == 0


def test_junk_inside_a_lecture_does_not_cut_it_short(st: AgentCoreRig, lecture: Path, tmp_path: Path) -> None:
    data = lecture.read_bytes()
    frames = media.parse_mp3(data).frames
    mid = frames[len(frames) // 2][0]
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(data[:mid] + b"junk-junk-12" + data[mid:])
    stored = st.put_lecture(OWNER, damaged)
    session_id = st.start_session(OWNER, stored)
    messages = st.ask(OWNER, session_id, "conn-j", text="What does rubisco fix?")
    assert messages[-1]["type"] == "answer", messages[-1]
    manifest = st.s3.get_object(
        Bucket=st.bucket, Key=keys.segments_prefix(stored["lectureId"]) + "manifest.json"
    )["Body"].read()
    items = json.loads(manifest)["items"]
    assert sum(i["end"] - i["start"] for i in items) >= media.parse_mp3(data).seconds - 0.05
