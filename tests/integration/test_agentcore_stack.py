"""AgentCore as a real process with the stand-in, the TTS service, moto and an @connections
receiver (all on loopback). Every pushed message is validated against the contract."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from synapscribe import keys
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.harness import AgentCoreRig, agentcore_rig, spawn_agentcore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.needs_tool("espeak-ng"),
]


OWNER = "eu-west-1:student-1"


def check_contract_order(messages: list[dict[str, Any]], voice_in: bool) -> dict[str, Any]:
    types = [m["type"] for m in messages]
    assert types.count("answer") + types.count("error") == 1 and types[-1] in ("answer", "error"), types
    if voice_in and types[-1] == "answer":
        # Anywhere before the final: the answer's text and audio do not wait for it (issue 12).
        assert types.count("transcript") == 1, types
    assert set(types) <= {"transcript", "answerDelta", "audio", "answer", "error"}
    seqs = [m["seq"] for m in messages if m["type"] == "audio"]
    assert seqs == list(range(len(seqs)))
    return messages[-1]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def st() -> Iterator[AgentCoreRig]:
    with agentcore_rig() as s:
        yield s
        assert s.receiver.invalid == []


def test_ready_when_model_and_tts_answer(st: AgentCoreRig) -> None:
    assert httpx.get(st.agentcore.url + "/health", timeout=5).status_code == 200
    resp = httpx.get(st.agentcore.url + "/ready", timeout=5)
    assert resp.status_code == 200, resp.text


def test_bad_job_is_refused_specifically(st: AgentCoreRig) -> None:
    resp = httpx.post(st.agentcore.url + "/v1/queries", json={"sessionId": "x"}, timeout=5)
    assert resp.status_code == 422
    assert "connectionId" in resp.text
    both = {
        "connectionId": "c",
        "owner": OWNER,
        "sessionId": "ses_x",
        "requestId": "r1",
        "text": "a",
        "queryKey": "b",
        "receivedAtMs": 1,
    }
    resp = httpx.post(st.agentcore.url + "/v1/queries", json=both, timeout=5)
    assert resp.status_code == 422 and "exactly one of" in resp.text
    assert (
        httpx.post(st.agentcore.url + "/v1/lectures/lec_nope/transcribe", json={}, timeout=5).status_code
        == 404
    )


def test_text_voice_and_follow_up_on_a_5_minute_audio_lecture(st: AgentCoreRig, audio_dir: Path) -> None:
    lecture = st.put_lecture(OWNER, audiogen.cached_lecture(5))
    assert lecture["contextMode"] == "audio" and lecture["status"] == "ready"
    session_id = st.start_session(OWNER, lecture)

    text = st.ask(OWNER, session_id, "conn-a", text="What does rubisco do in the Calvin cycle?")
    answer = check_contract_order(text, voice_in=False)
    assert answer["type"] == "answer", answer
    assert "rubisco fixes carbon dioxide" in answer["text"]
    # The items were made once and stored: 300 s in items of at most max_item_seconds (whole MP3
    # frames, so 60 s items need one more than 300 / 60).
    listed = st.s3.list_objects_v2(Bucket=st.bucket, Prefix=keys.segments_prefix(lecture["lectureId"]))
    items = len([o for o in listed["Contents"] if o["Key"].endswith(".mp3")])
    assert items in (
        -(-300 // load_platform().audio.max_item_seconds),
        -(-300 // load_platform().audio.max_item_seconds) + 1,
    )
    assert f"read {items} audio item(s)" in answer["text"]
    assert answer["audio"] and answer["ttsEngine"] == "espeak-ng"
    mp3 = httpx.get(answer["audio"][0], timeout=5)
    assert mp3.status_code == 200 and (
        mp3.content[:3] == b"ID3" or mp3.content[:2] in (b"\xff\xf3", b"\xff\xfb")
    )

    clip = audiogen.speak("Where does photosynthesis take place?", audio_dir / "q1.mp3").path.read_bytes()
    voice = st.ask(OWNER, session_id, "conn-a", audio=clip)
    answer = check_contract_order(voice, voice_in=True)
    assert [m["text"] for m in voice if m["type"] == "transcript"] == [
        "[stand-in] Where does photosynthesis take place?"
    ]
    assert answer["type"] == "answer" and answer["timings"]["asrMs"] is not None
    assert "Earlier in this conversation you asked: What does rubisco do" in answer["text"]
    assert f"read {items + 1} audio item(s)" in answer["text"]  # lecture items + the question

    # A second AgentCore (no shared memory) continues the same session from DynamoDB.
    with spawn_agentcore(st.env) as other:
        original = st.agentcore
        st.agentcore = other
        try:
            follow = st.ask(OWNER, session_id, "conn-a", text="Which pigment is in the chloroplasts?")
        finally:
            st.agentcore = original
    answer = check_contract_order(follow, voice_in=False)
    assert (
        "Earlier in this conversation you asked: [stand-in] Where does photosynthesis take place?"
        in answer["text"]
    )
    session = st.store.get_session(session_id, OWNER)
    assert session is not None and [t["question"] for t in session["history"]] == [
        "What does rubisco do in the Calvin cycle?",
        "[stand-in] Where does photosynthesis take place?",
        "Which pigment is in the chloroplasts?",
    ]
    relisted = st.s3.list_objects_v2(Bucket=st.bucket, Prefix=keys.segments_prefix(lecture["lectureId"]))
    assert [o["ETag"] for o in relisted["Contents"]] == [o["ETag"] for o in listed["Contents"]]


def test_query_upload_key_and_foreign_session(st: AgentCoreRig, audio_dir: Path) -> None:
    lecture = st.put_lecture(OWNER, audiogen.cached_lecture(5))
    session_id = st.start_session(OWNER, lecture)
    clip = audiogen.speak("What is released when water is split?", audio_dir / "q2.mp3").path
    key = keys.query_key(OWNER, keys.new_id("qry"), "mp3")
    st.s3.put_object(Bucket=st.bucket, Key=key, Body=clip.read_bytes())
    messages = st.ask(OWNER, session_id, "conn-b", query_key=key)
    answer = check_contract_order(messages, voice_in=True)
    assert answer["type"] == "answer" and "oxygen is released" in answer["text"]

    stranger = st.ask("eu-west-1:stranger", session_id, "conn-c", text="Give me their lecture?")
    assert [m["type"] for m in stranger] == ["error"] and stranger[0]["code"] == "not_found"


def test_25_minute_lecture_in_transcript_mode(st: AgentCoreRig) -> None:
    lecture = st.put_lecture(OWNER, audiogen.cached_lecture(25), connection_id="conn-up")
    assert lecture["contextMode"] == "transcript" and lecture["status"] == "transcribing"
    pushed = st.transcribe(lecture["lectureId"], "conn-up", timeout=180)
    assert pushed["status"] == "ready" and pushed["contextMode"] == "transcript", pushed
    stored = st.store.get_lecture(lecture["lectureId"], OWNER)
    assert stored is not None and stored["status"] == "ready"
    body = st.s3.get_object(Bucket=st.bucket, Key=keys.transcript_key(lecture["lectureId"]))["Body"].read()
    transcript = json.loads(body)
    segments = transcript["segments"]
    assert len(segments) in (25, 26)  # whole MP3 frames: 60 s items may need one more
    assert all(s["end"] - s["start"] <= load_platform().audio.max_item_seconds for s in segments)
    assert segments[0]["start"] == 0 and abs(segments[-1]["end"] - 1500) < 1
    assert "Welcome to today's lecture on photosynthesis." in segments[0]["text"]

    session_id = st.start_session(OWNER, stored)
    messages = st.ask(OWNER, session_id, "conn-d", text="What does the rate of photosynthesis depend on?")
    answer = check_contract_order(messages, voice_in=False)
    assert answer["type"] == "answer", answer
    assert "light, carbon dioxide and temperature" in answer["text"]
    assert "read 0 audio item(s)" in answer["text"]

    again = httpx.post(
        f"{st.agentcore.url}/v1/lectures/{lecture['lectureId']}/transcribe", json={}, timeout=5
    )
    assert again.status_code == 200 and again.json()["status"] == "ready"


def test_model_server_down() -> None:
    with agentcore_rig(with_standin=False) as s:
        ready = httpx.get(s.agentcore.url + "/ready", timeout=10)
        assert ready.status_code == 503 and "model server" in ready.text
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        session_id = s.start_session(OWNER, lecture)
        started = time.monotonic()
        messages = s.ask(OWNER, session_id, "conn-e", text="Anyone there?", timeout=30)
        assert time.monotonic() - started < load_platform().agentcore.upstream_timeout_seconds
        assert [m["type"] for m in messages] == ["error"]
        assert messages[0]["code"] == "upstream_unavailable" and "model server" in messages[0]["message"]
        assert "Traceback" not in messages[0]["message"]
        assert s.receiver.invalid == []


def test_tts_down_still_answers() -> None:
    from synapscribe_local.standin.process import free_port

    with agentcore_rig(tts_url=f"http://127.0.0.1:{free_port()}") as s:
        ready = httpx.get(s.agentcore.url + "/ready", timeout=10)
        assert ready.status_code == 503 and "TTS" in ready.text
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        messages = s.ask(OWNER, s.start_session(OWNER, lecture), "conn-f", text="What does rubisco do?")
        answer = check_contract_order(messages, voice_in=False)
        assert answer["type"] == "answer" and answer["text"]
        assert answer["audio"] == [] and answer["ttsEngine"] == "none"
        assert s.receiver.invalid == []


def test_busy_when_the_model_is_at_capacity() -> None:
    with agentcore_rig(
        standin_args=["--first-token-seconds", "1.5"],
        agentcore_env={"SYNAPSCRIBE_MAX_NUM_SEQS": "1", "SYNAPSCRIBE_QUEUE_TIMEOUT_SECONDS": "0.3"},
    ) as s:
        lecture = s.put_lecture(OWNER, audiogen.cached_lecture(5))
        first_session, second_session = s.start_session(OWNER, lecture), s.start_session(OWNER, lecture)
        first = s.submit(OWNER, first_session, "conn-g", text="What does rubisco do?", voice=False)
        time.sleep(0.5)
        second = s.ask(OWNER, second_session, "conn-h", text="And chlorophyll?", voice=False)
        assert [m["type"] for m in second] == ["error"] and second[0]["code"] == "busy"
        done = s.receiver.wait_final("conn-g", first, timeout=30)
        assert done[-1].message["type"] == "answer"
        assert s.receiver.invalid == []


def test_generated_lectures_get_the_planned_mode_and_long_transcripts_are_refused(st: AgentCoreRig) -> None:
    p = load_platform()
    modes = {}
    for minutes in (5, 12, 25, 70):
        lecture = st.put_lecture(OWNER, audiogen.cached_lecture(minutes), connection_id="conn-modes")
        modes[minutes] = lecture.get("contextMode") if lecture["status"] != "rejected" else None
    assert modes[5] == "audio" and modes[12] == "transcript" and modes[25] == "transcript"
    assert modes[70] == ("transcript" if p.max_transcript_lecture_seconds >= 70 * 60 else None)
    if modes[70] == "transcript":
        # Planned by duration it fits; counted by the model's tokenizer, the generated speech (denser
        # than 150 words a minute) does not: refused with the limit, never truncated.
        lecture = st.put_lecture(OWNER, audiogen.cached_lecture(70), connection_id="conn-70")
        pushed = st.transcribe(lecture["lectureId"], "conn-70", timeout=240)
        assert pushed["status"] == "rejected", pushed
        assert f"at most {p.lecture_token_budget}" in pushed["reason"]
