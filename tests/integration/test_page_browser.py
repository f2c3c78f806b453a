"""The student page in Debian's Chromium (headless, DevTools protocol, real time) against the local
stack with the model stand-in: upload, ready, a voice question from the fake microphone, a text
question, a follow-up, a file that is not audio, a connection closed by the server and the
reconnect, a lecture rejected with its reason. What the page shows is read back; the spoken
sentences must have played in order. The finished conversation is left in build/page-demo.png."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synapscribe.local.page_tour import (
    AFTER_RECONNECT,
    FOLLOW_UP,
    LONG_QUESTION_SECONDS,
    SCREENSHOT,
    STOPPED_QUESTION,
    TEXT_QUESTION,
    TourResult,
    run_tour,
)
from synapscribe.local.process import LocalStackProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.timeout(240),
    pytest.mark.needs_tool("chromium", "espeak-ng", "ffmpeg"),
]

REPO = Path(__file__).resolve().parents[2]
ANSWER_TOKENS = 48
#: Answers are written at this rate (about 2.4 s each), so the student can press Stop mid-answer.
TOKENS_PER_SECOND = 20


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory, lecture_audio: Callable[..., Path]) -> TourResult:
    workdir = tmp_path_factory.mktemp("page")
    started = time.monotonic()
    # Short answers (about 3 to 4 sentences): spoken answers play in real time, ~4 s a sentence.
    env = {
        "SYNAPSCRIBE_STANDIN_ANSWER_TOKENS": str(ANSWER_TOKENS),
        "SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND": str(TOKENS_PER_SECOND),
    }
    with LocalStackProcess(env=env) as stack:
        assert stack.page_url == stack.info["page"] and stack.page_url.startswith("http://127.0.0.1:")
        result = asyncio.run(
            run_tour(stack.page_url, stack.info, workdir, workdir / "page.png", lecture=lecture_audio(0.5))
        )
    result.seconds["wall"] = round(time.monotonic() - started, 1)
    print(f"browser tour: {result.seconds}")
    assert result.screenshot is not None
    (REPO / SCREENSHOT).parent.mkdir(exist_ok=True)
    shutil.copyfile(result.screenshot, REPO / SCREENSHOT)
    return result


def test_lecture_uploads_with_progress_and_gets_ready(tour: TourResult) -> None:
    assert tour.upload_progress == 1
    assert re.fullmatch(
        r"Ready · mode: audio \(the model listens to the audio\) · 0\.5 min", tour.lecture_status
    )


def test_voice_question_recorded_as_webm_opus_is_heard_whole(tour: TourResult) -> None:
    voice = tour.turns[0]
    assert voice["kind"] == "voice" and voice["state"] == "answered", voice
    assert tour.recorded_type == "audio/webm;codecs=opus"
    # Low bit rate: the clip went inline, in one frame under API Gateway's 32 KB.
    assert voice["transport"] == "inline"
    recorded = float(re.fullmatch(r"Voice question \(([\d.]+) s\)", voice["question"]).group(1))
    heard = re.fullmatch(
        r"Heard: \[stand-in\] \(inaudible: no embedded text; ([\d.]+) s of audio\)", voice["transcript"]
    )
    assert heard, voice["transcript"]
    # The model server decoded the browser's recording (converted to MP3 by AgentCore) to about
    # the length the page recorded: nothing was cut or lost on the way.
    assert float(heard.group(1)) > 1.5 and abs(float(heard.group(1)) - recorded) < 0.6, (heard, recorded)
    assert voice["answer"].startswith("[stand-in] ") and "read 2 audio item(s)" in voice["answer"]


def test_text_question_and_follow_up_carry_the_conversation(tour: TourResult) -> None:
    kinds = [(t["kind"], t["state"], t["error"]) for t in tour.turns]
    assert kinds == [("voice", "answered", None)] * 2 + [("text", "stopped", None)] + [
        ("text", "answered", None)
    ] * 3 + [("voice", "answered", None)]
    text, follow_up, after = tour.turns[3:6]
    assert text["question"] == TEXT_QUESTION and text["answer"].startswith(
        f"[stand-in] You asked: {TEXT_QUESTION}"
    )
    # The stopped question is not kept in the history: the follow-up's earlier question is the text one.
    assert f"Earlier in this conversation you asked: {TEXT_QUESTION}" in follow_up["answer"]
    # After the reconnect the same session goes on: the answer knows the question before the drop.
    assert after["answer"].startswith(f"[stand-in] You asked: {AFTER_RECONNECT}")
    assert f"Earlier in this conversation you asked: {FOLLOW_UP}" in after["answer"]


def test_a_long_voice_question_goes_up_as_a_query_upload(tour: TourResult) -> None:
    long = tour.turns[6]
    assert long["transport"] == "upload", long
    heard = re.fullmatch(
        r"Heard: \[stand-in\] \(inaudible: no embedded text; ([\d.]+) s of audio\)", long["transcript"]
    )
    assert heard and abs(float(heard.group(1)) - LONG_QUESTION_SECONDS) < 1.5, long["transcript"]
    assert f"Earlier in this conversation you asked: {AFTER_RECONNECT}" in long["answer"]


def _events(tour: TourResult, request_id: str, event: str) -> list[dict[str, Any]]:
    return [e for e in tour.play_log if e["requestId"] == request_id and e["event"] == event]


def test_spoken_sentences_played_in_order_without_gaps(tour: TourResult) -> None:
    spoken = [
        (t["requestId"], s["seq"]) for t in tour.turns for s in t["sentences"] if s["state"] == "played"
    ]
    assert len(tour.turns[0]["sentences"]) >= 2 and len(tour.turns[1]["sentences"]) >= 2
    # "Speak the answers" unticked: the answers after it are read only.
    assert all(t["sentences"] == [] for t in tour.turns[4:])
    assert all(s["state"] in ("played", "skipped") for t in tour.turns for s in t["sentences"])
    plays = [(e["requestId"], e["seq"]) for e in tour.play_log if e["event"] == "play"]
    ends = [(e["requestId"], e["seq"]) for e in tour.play_log if e["event"] == "ended"]
    stopped = {(e["requestId"], e["seq"]) for e in tour.play_log if e["event"] == "stopped"}
    assert ends == spoken and [p for p in plays if p not in stopped] == ends, tour.play_log
    # One at a time: each sentence starts after the previous ended, and within one answer (all its
    # audio preloaded by then) at once.
    log = tour.play_log
    for before, after in itertools.pairwise(log):
        assert after["t"] >= before["t"]
        if (
            before["event"] == "ended"
            and after["requestId"] == before["requestId"]
            and after["event"] == "play"
        ):
            assert after["seq"] == before["seq"] + 1 and after["t"] - before["t"] < 1000, (before, after)


def test_talking_over_an_answer_silences_it_at_once(tour: TourResult) -> None:
    """Barge-in: pressing talk while an answer is spoken stops it; nothing more of it plays, and
    the new question's first sentence plays as soon as it arrives (not after the old speech)."""
    old, new = tour.turns[0]["requestId"], tour.turns[1]["requestId"]
    assert _events(tour, old, "play") and _events(tour, old, "stopped"), tour.play_log
    assert all(e["t"] < tour.barge_in_at for e in _events(tour, old, "play"))
    assert all(e["t"] >= tour.barge_in_at for e in _events(tour, old, "stopped"))
    assert any(s["state"] == "skipped" for s in tour.turns[0]["sentences"])
    [queued] = [e for e in _events(tour, new, "queued") if e["seq"] == 0]
    [first] = [e for e in _events(tour, new, "play") if e["seq"] == 0]
    waited = first["t"] - queued["t"]
    print(f"barge-in: the new answer's first sentence played {waited:.0f} ms after it arrived")
    assert waited < 1500, (queued, first)


def test_stop_ends_the_answer_on_the_server(tour: TourResult) -> None:
    stopped = tour.turns[2]
    assert stopped["question"] == STOPPED_QUESTION and stopped["status"] == "Stopped."
    # What came before the stop (the stand-in's answer begins with the question), and no more.
    full = f"[stand-in] You asked: {STOPPED_QUESTION}"
    assert stopped["answer"] and (full.startswith(stopped["answer"]) or stopped["answer"].startswith(full))
    assert len(stopped["answer"]) < ANSWER_TOKENS * 4, stopped
    assert not _events(tour, stopped["requestId"], "play"), tour.play_log


def test_unticking_speech_silences_the_answer_now(tour: TourResult) -> None:
    spoken = tour.turns[3]["requestId"]
    assert all(e["t"] < tour.speech_off_at for e in _events(tour, spoken, "play"))
    assert [e for e in _events(tour, spoken, "stopped") if e["t"] >= tour.speech_off_at]
    assert tour.stop_hidden_after


def test_errors_are_shown_in_words(tour: TourResult) -> None:
    assert tour.not_audio_notice.startswith("That file is not audio we can use.")
    assert tour.rejected_status.startswith(
        "Rejected: The file is not an audio recording (it is a text file)."
    )


def test_a_dropped_connection_reconnects(tour: TourResult) -> None:
    assert tour.reconnect_states[0] == "reconnecting" and tour.reconnect_states[-1] == "open"


def test_the_page_logged_no_errors_and_left_a_screenshot(tour: TourResult) -> None:
    assert [line for line in tour.console if line.startswith(("error", "exception"))] == []
    png = (REPO / SCREENSHOT).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
