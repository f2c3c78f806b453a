"""The ideal schedule times `bench pipeline` prints beside the measured concurrency ratio."""

from __future__ import annotations

import pytest
from synapscribe_ops.bench.pipeline import ScheduleBounds

# The stand-in figures: transcription 1.8 s; answer 0.4 s + 170 tokens at 40/s; TTS 0.3 s.
REPORT = {"transcription": 1.8, "answer": 0.4 + 170 / 40, "tts": 0.3}


def test_eight_voice_queries_on_eight_slots() -> None:
    b = ScheduleBounds.compute(queries=8, slots=8, **REPORT)
    assert b.one == pytest.approx(4.95)
    # 16 requests, 51.6 slot-seconds on 8 slots.
    assert b.answers_first == pytest.approx(6.45)
    assert b.transcripts_early == pytest.approx(6.75)
    assert b.answers_first / b.one == pytest.approx(1.303, abs=0.001)
    assert b.transcripts_early / b.one == pytest.approx(1.364, abs=0.001)


def test_one_query_is_its_own_bound() -> None:
    b = ScheduleBounds.compute(queries=1, slots=8, **REPORT)
    assert b.answers_first == b.transcripts_early == b.one


def test_within_half_the_slots_nothing_waits() -> None:
    b = ScheduleBounds.compute(queries=4, slots=8, **REPORT)
    assert b.transcripts_early == pytest.approx(b.one)


def test_more_queries_than_slots_run_in_waves() -> None:
    b = ScheduleBounds.compute(queries=16, slots=8, **REPORT)
    assert b.answers_first == pytest.approx(16 * 6.45 / 8)
    assert b.transcripts_early == pytest.approx(16 * 6.45 / 8 + 0.3)
    # Answers in two waves end at 9.3 s + speech: less than the work bound here.
    b = ScheduleBounds.compute(queries=16, slots=8, transcription=0.1, answer=4.65, tts=0.3)
    assert b.answers_first == pytest.approx(2 * 4.65 + 0.3)


def test_one_slot_runs_each_query_s_two_requests_in_turn() -> None:
    # Alone: the answer first (4.65 s), its speech beside the transcription (1.8 s) that follows.
    b = ScheduleBounds.compute(queries=1, slots=1, **REPORT)
    assert b.one == pytest.approx(4.65 + 1.8)
    # Eight at once: 51.6 slot-seconds on one slot; answers first end the burst at the work bound.
    b = ScheduleBounds.compute(queries=8, slots=1, **REPORT)
    assert b.ideal == b.answers_first == pytest.approx(8 * 6.45)
    assert b.transcripts_early == pytest.approx(8 * 6.45 + 0.3)


def test_the_ideal_is_the_answers_first_schedule_at_any_slot_count() -> None:
    for slots in (1, 2, 4, 8, 16):
        b = ScheduleBounds.compute(queries=8, slots=slots, **REPORT)
        assert b.ideal == b.answers_first <= b.transcripts_early
        assert b.ideal >= b.one
    # Sixteen slots for eight queries: nothing waits, the ideal is one query's time.
    assert ScheduleBounds.compute(queries=8, slots=16, **REPORT).ideal == pytest.approx(4.95)
