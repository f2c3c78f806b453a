"""The student page in Debian's Chromium (headless, DevTools protocol, real time) against the local
stack with the model stand-in: upload, ready, a voice question from the fake microphone, a text
question, a follow-up, a file that is not audio, a connection closed by the server and the
reconnect, a lecture rejected with its reason; at phone size a question, barge-in, Stop, a bad
upload's words on screen, the reload that reopens the conversation with its citations, and a
browser that refuses playback. What the page shows is read back; the spoken sentences must have
played in order. The finished conversation is left in build/page-demo.png."""

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
from synapscribe_local.page_tour import (
    AFTER_RECONNECT,
    FOLLOW_UP,
    LONG_QUESTION_SECONDS,
    SCREENSHOT,
    STOPPED_QUESTION,
    TEXT_QUESTION,
    phone_screenshot_path,
    run_tour,
)
from synapscribe_local.page_tour_phone import BLOCKED_QUESTION, PHONE_QUESTION, PHONE_STOPPED_QUESTION
from synapscribe_local.page_tour_result import TourResult
from synapscribe_local.process import LocalStackProcess

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
            run_tour(
                stack.page_url,
                stack.info,
                workdir,
                workdir / "page.png",
                lecture=lecture_audio(0.5),
                axe=REPO / "node_modules/axe-core/axe.min.js",
            )
        )
    result.seconds["wall"] = round(time.monotonic() - started, 1)
    print(f"browser tour: {result.seconds}")
    assert result.screenshot is not None
    (REPO / SCREENSHOT).parent.mkdir(exist_ok=True)
    shutil.copyfile(result.screenshot, REPO / SCREENSHOT)
    assert result.phone_screenshot is not None
    shutil.copyfile(result.phone_screenshot, REPO / phone_screenshot_path(SCREENSHOT))
    print(f"screenshots: {REPO / SCREENSHOT} and {REPO / phone_screenshot_path(SCREENSHOT)}")
    return result


def test_lecture_uploads_with_progress_and_gets_ready(tour: TourResult) -> None:
    assert tour.upload_progress == 1
    # Plain words, no jargon ("mode: audio").
    assert tour.lecture_status == "Ready · answers come from the recording itself · 0.5 min"


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
    assert (
        kinds
        == [("voice", "answered", None)] * 2
        + [("text", "stopped", None)]
        + [("text", "answered", None)] * 3
        + [("voice", "answered", None)] * 2
    )
    text, follow_up, after = tour.turns[3:6]
    assert text["question"] == TEXT_QUESTION and text["answer"].startswith(
        f"[stand-in] You asked: {TEXT_QUESTION}"
    )
    # The stopped question is not kept in the history: the follow-up's earlier question is the text one.
    assert f"Earlier in this conversation you asked: {TEXT_QUESTION}" in follow_up["answer"]
    # After the reconnect the same session goes on: the answer knows the question before the drop.
    assert after["answer"].startswith(f"[stand-in] You asked: {AFTER_RECONNECT}")
    assert f"Earlier in this conversation you asked: {FOLLOW_UP}" in after["answer"]


def test_one_quick_click_records_until_the_next_click(tour: TourResult) -> None:
    """First use: a click (the button is up before the microphone is on) keeps recording."""
    assert tour.quick_click_label == "Recording… click to send"
    assert tour.turns[0]["state"] == "answered"


def test_quick_clicks_send_nothing_and_say_how_to_talk(tour: TourResult) -> None:
    assert tour.quick_clicks_turns == 0
    assert tour.quick_clicks_status.startswith("Too short to send: hold the button while you speak")


def test_space_held_on_the_talk_button_asks_by_voice(tour: TourResult) -> None:
    space = tour.turns[6]
    assert space["kind"] == "voice" and space["state"] == "answered" and space["transport"] == "inline"
    heard = re.fullmatch(
        r"Heard: \[stand-in\] \(inaudible: no embedded text; ([\d.]+) s of audio\)", space["transcript"]
    )
    assert heard and float(heard.group(1)) > 1.5, space


def test_a_question_held_past_the_limit_stops_with_margin_and_is_answered(tour: TourResult) -> None:
    long = tour.turns[7]
    assert tour.mic_level_moved  # the microphone level showed the speech while recording
    assert tour.countdown.endswith("s left: finish your question"), tour.countdown
    assert tour.auto_stop_status == "Sent: a question stops at 28.5 s, just under the 30 s limit."
    # Too long for one frame: it went up as a query upload, and was answered, not refused.
    assert long["transport"] == "upload" and long["state"] == "answered" and long["error"] is None, long
    heard = re.fullmatch(
        r"Heard: \[stand-in\] \(inaudible: no embedded text; ([\d.]+) s of audio\)", long["transcript"]
    )
    assert heard and abs(float(heard.group(1)) - LONG_QUESTION_SECONDS) < 1.5 and float(heard.group(1)) < 30
    assert re.fullmatch(r"Voice question \(28\.\d s\)", long["question"]), long["question"]


def _events(tour: TourResult, request_id: str, event: str) -> list[dict[str, Any]]:
    return [e for e in tour.play_log if e["requestId"] == request_id and e["event"] == event]


def test_spoken_sentences_played_in_order_without_gaps(tour: TourResult) -> None:
    spoken = [
        (t["requestId"], s["seq"]) for t in tour.turns for s in t["sentences"] if s["state"] == "played"
    ]
    assert len(tour.turns[0]["sentences"]) >= 2 and len(tour.turns[1]["sentences"]) >= 2
    # "Speak the answers" unticked: the answers after it are read only.
    assert all(t["sentences"] == [] for t in tour.turns[4:])
    log = [e for e in tour.play_log if "#replay" not in e["requestId"]]  # the replay has its own test
    assert all(s["state"] in ("played", "skipped") for t in tour.turns for s in t["sentences"])
    plays = [(e["requestId"], e["seq"]) for e in log if e["event"] == "play"]
    ends = [(e["requestId"], e["seq"]) for e in log if e["event"] == "ended"]
    stopped = {(e["requestId"], e["seq"]) for e in log if e["event"] == "stopped"}
    assert ends == spoken and [p for p in plays if p not in stopped] == ends, log
    # One at a time: each sentence starts after the previous ended, and within one answer (all its
    # audio preloaded by then) at once.
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
    """Unticking "Speak the answers" while an answer is spoken: once the page shows it taken (box
    clear, no Stop), no sentence starts and no audio is playing a question later. (A `playing`
    event already on its way at the click may be logged just after it: that sentence was started
    before the untick, and the page paused it, which is what the checks below see.)"""
    spoken = tour.turns[3]["requestId"]
    assert tour.sounding_after_speech_off == [], tour.sounding_after_speech_off
    assert not [e for e in _events(tour, spoken, "play") if e["t"] >= tour.speech_off_shown_at], tour.play_log
    assert tour.stop_hidden_after
    # It was speaking at the untick, and the untick (not its end) silenced it.
    assert [e for e in _events(tour, spoken, "play") if e["t"] < tour.speech_off_at], tour.play_log
    assert [e for e in _events(tour, spoken, "stopped") if e["t"] >= tour.speech_off_at], tour.play_log


def test_errors_are_shown_in_words(tour: TourResult) -> None:
    assert tour.not_audio_notice.startswith("That file is not a recording we can use. Choose an audio file")
    assert tour.empty_file_notice == "That file is empty (0 bytes). Choose the recording itself."
    assert "reload" not in (tour.not_audio_notice + tour.empty_file_notice).lower()
    assert tour.rejected_status.startswith(
        "Rejected: The file is not an audio recording (it is a text file)."
    )


def test_a_rejected_upload_keeps_the_lecture_that_was_ready(tour: TourResult) -> None:
    kept = tour.kept_after_reject
    assert kept["askVisible"] and kept["talkEnabled"], kept
    assert (
        kept["notice"].startswith("That recording cannot be used: ")
        and "You can still ask about" in kept["notice"]
    )


def test_answers_cite_the_lecture_and_a_click_plays_it_from_there(tour: TourResult) -> None:
    """The stand-in quotes a lecture sentence and cites its part (the 0.5-minute lecture is one
    part, 00:00-00:30); the page shows the range as a timestamp, never the marker, and a click
    plays the lecturer's own recording (a 5-minute presigned GET) from its start."""
    text = tour.turns[3]
    [cited] = text["citations"]
    assert cited["start"] == 0 and 29 <= cited["end"] <= 30, text
    assert re.fullmatch(r"From the lecture: ▶ 0:00–0:(29|30)", text["citationsText"]), text
    assert "[from" not in text["answer"]
    played = tour.lecture_played
    assert abs(played["at"] - cited["start"]) < 0.5 and played["end"] == cited["end"], played
    assert "/lectures/" in played["src"] and "X-Amz-Expires=300" in played["src"], played
    # An answer with no support in the lecture says so and cites nothing.
    unsupported = tour.turns[0]
    assert unsupported["citations"] == []
    assert unsupported["citationsText"] == "Not found in the lecture: this answer cites no part of it."


def test_each_spoken_answer_can_be_replayed(tour: TourResult) -> None:
    assert tour.replay_played
    replayed = tour.turns[3]["requestId"] + "#replay-1"
    assert any(e["requestId"] == replayed and e["event"] == "play" for e in tour.play_log)


def test_accessible_at_desktop_and_phone_sizes(tour: TourResult) -> None:
    """axe-core (npm) finds nothing serious or critical; targets are 44 px; the answer is read
    once (one live region, no second copy of its text); the ask bar stays on a phone's screen."""
    assert set(tour.audit) == {"desktop", "phone"}
    for size, violations in tour.audit.items():
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert bad == [], (size, bad)
    for size, box in tour.talk_box.items():
        assert box["width"] >= 44 and box["height"] >= 44, (size, box)
    assert tour.ask_bar_on_screen
    assert tour.answer_text_count == 1
    assert tour.announced == tour.turns[-1]["answer"]


def test_a_question_asked_at_phone_size_is_answered_above_the_ask_bar(tour: TourResult) -> None:
    phone = tour.phone_turn
    assert phone["question"] == PHONE_QUESTION and phone["state"] == "answered", phone
    assert phone["citations"], phone  # the stand-in quotes the chloroplast sentence
    # The answer ends above the sticky ask bar, which is on screen.
    assert phone["askBarOnScreen"]["ok"] is True, phone["askBarOnScreen"]


def test_talking_over_an_answer_at_phone_size_silences_it(tour: TourResult) -> None:
    barge = tour.phone_barge_in
    assert barge["turn"]["kind"] == "voice" and barge["turn"]["state"] == "answered", barge["turn"]
    plays = [e for e in barge["previous"] if e["event"] == "play"]
    stops = [e for e in barge["previous"] if e["event"] == "stopped"]
    assert plays and all(e["t"] < barge["at"] for e in plays), barge["previous"]
    assert stops and all(e["t"] >= barge["at"] for e in stops), barge["previous"]


def test_stop_at_phone_size_ends_the_answer(tour: TourResult) -> None:
    stopped = tour.phone_stopped
    assert stopped["question"] == PHONE_STOPPED_QUESTION and stopped["state"] == "stopped", stopped
    assert stopped["status"] == "Stopped." and len(stopped["answer"]) < ANSWER_TOKENS * 4, stopped


def test_a_bad_upload_at_phone_size_is_explained_on_screen(tour: TourResult) -> None:
    alert = tour.phone_not_audio["alert"] or ""
    assert alert.startswith("That file is not a recording we can use. Choose an audio file"), alert
    assert "reload" not in alert.lower()


def test_reopened_answers_keep_their_citations_and_play_the_lecture(tour: TourResult) -> None:
    """getSession gives back each answer's citations (kept with the turn): the reopened page shows
    the same timestamps as the live answer did, and a click plays the lecture (at phone size)."""
    live = {t["requestId"]: t for t in [*tour.turns, tour.phone_turn]}
    restored = [t for t in tour.restored_turns if t["requestId"] in live]
    assert restored, (tour.restored_turns, list(live))
    for turn in restored:
        was = live[turn["requestId"]]
        assert (turn["citations"], turn["citationsText"]) == (was["citations"], was["citationsText"]), turn
    assert any(t["citations"] for t in restored) and any(t["citations"] == [] for t in restored)
    first = next(t["citations"][0] for t in tour.restored_turns if t["citations"])
    played = tour.restored_lecture_played
    assert abs(played["at"] - first["start"]) < 0.5 and played["end"] == first["end"], played


def test_a_browser_that_blocks_playback_says_how_to_allow_sound(tour: TourResult) -> None:
    """Chromium refusing play() (NotAllowedError, as its autoplay policy does): the spoken answer
    is not heard, and the alert on the screen says how to allow sound."""
    turn = tour.blocked["turn"]
    assert turn["question"] == BLOCKED_QUESTION and turn["state"] == "answered", turn
    alert = tour.blocked["alert"] or ""
    assert alert.startswith("Your browser blocked the spoken answer. Allow sound for this page"), alert
    assert "Replay answer" in alert


def test_reload_brings_back_the_lectures_and_the_conversation(tour: TourResult) -> None:
    restored = [(t["question"], t["state"]) for t in tour.restored_turns]
    assert (TEXT_QUESTION, "answered") in restored and (AFTER_RECONNECT, "answered") in restored, restored
    # The stopped answer was not kept; the voice questions show what was heard.
    assert STOPPED_QUESTION not in [q for q, _ in restored]
    voice = [t for t in tour.restored_turns if t["kind"] == "voice"]
    assert voice and all(t["transcript"].startswith("Heard: [stand-in]") for t in voice)
    assert any(name.endswith("· Ready · 0.5 min") for name in tour.lectures_listed), tour.lectures_listed
    assert tour.welcome_back.startswith("Welcome back. Your conversation about ")


def test_a_dropped_connection_reconnects(tour: TourResult) -> None:
    assert tour.reconnect_states[0] == "reconnecting" and tour.reconnect_states[-1] == "open"


def test_the_page_logged_no_errors_and_left_a_screenshot(tour: TourResult) -> None:
    assert [line for line in tour.console if line.startswith(("error", "exception"))] == []
    png = (REPO / SCREENSHOT).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
