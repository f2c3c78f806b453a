"""Citations (agentcore/citations.py): the answer says where in the lecture it comes from. The
stand-in cites the part holding the sentence it quotes, as the system prompt asks; AgentCore
parses the ranges into the `answer`'s `citations` (inside the lecture), keeps them out of the
speech, and an answer the lecture does not support cites nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from required_tools import require_tools
from synapscribe.agentcore import citations
from synapscribe.audio.tags import Cue
from synapscribe_local import audiogen

from .pipeline_rig import check_order

PLANTED = "The zebra enzyme glows violet inside the chloroplast."


@pytest.fixture(scope="module")
def planted_lecture(tmp_path_factory: pytest.TempPathFactory) -> audiogen.GeneratedAudio:
    """Two minutes whose planted sentence first comes after the first minute (in part 2 or later)."""
    require_tools("espeak-ng")
    sentences = (*audiogen.DEFAULT_LECTURE, *audiogen.DEFAULT_LECTURE, PLANTED)
    path: Path = tmp_path_factory.mktemp("cite") / "planted.mp3"
    return audiogen.make_lecture(path, 2.0, sentences=sentences)


def first_cue(lecture: audiogen.GeneratedAudio, text: str) -> Cue:
    return next(c for c in lecture.timeline if c.text == text)


async def test_the_answer_cites_the_part_holding_the_planted_sentence(
    make_rig: Any, planted_lecture: audiogen.GeneratedAudio
) -> None:
    cue = first_cue(planted_lecture, PLANTED)
    assert cue.start > 60, cue  # not in the first part
    async with make_rig(
        lecture_bytes=planted_lecture.path.read_bytes(), duration=planted_lecture.duration_seconds
    ) as rig:
        messages = await rig.ask(rig.session(), text="What glows violet, the zebra enzyme?", voice=True)
        answer = check_order(messages, voice_in=False)
        assert answer["type"] == "answer", answer
        assert "[from " in answer["text"], answer["text"]
        [cited] = answer["citations"]
        assert (
            0 <= cited["startSeconds"] <= cue.start < cited["endSeconds"] <= planted_lecture.duration_seconds
        )
        assert cited["endSeconds"] - cited["startSeconds"] <= rig.platform.audio.max_item_seconds
        # The range is shown, never read aloud.
        spoken = [m["text"] for m in messages if m["type"] == "audio"]
        assert spoken and not any("[from" in s for s in spoken), spoken


async def test_an_answer_the_lecture_does_not_support_cites_nothing(make_rig: Any) -> None:
    async with make_rig() as rig:
        messages = await rig.ask(rig.session(), text="Who won the football cup in 1966?", voice=False)
        answer = check_order(messages, voice_in=False)
        assert "The lecture has no sentence about that." in answer["text"]
        assert answer["citations"] == []


def test_ranges_are_parsed_once_inside_the_lecture() -> None:
    text = "A [from 01:00-02:00]. B [from 01:00-02:00] C [from 0:05 - 0:09] D [from 09:00-10:00] E [from 02:00-01:00]"
    assert [(c.startSeconds, c.endSeconds) for c in citations.parse(text, 300)] == [(60, 120), (5, 9)]
    assert [(c.startSeconds, c.endSeconds) for c in citations.parse("[from 04:00-06:00]", 300.0)] == [
        (240, 300)
    ]
    assert citations.unspoken("It is green. [from 00:00-01:00]") == "It is green."
    assert len(citations.parse(" ".join(f"[from 00:{i:02d}-00:{i + 1:02d}]" for i in range(30)), None)) == 8
