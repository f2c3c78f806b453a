"""The generated 5, 12, 25 and 70 minute lectures: durations mutagen measures, and the planner's mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.mp3 import MP3
from synapscribe.planner import plan_lecture
from synapscribe.platform import load_platform
from synapscribe_local.audiogen import embedded_text


@pytest.mark.parametrize(
    ("minutes", "mode"), [(5, "audio"), (12, "transcript"), (25, "transcript"), (70, None)]
)
def test_generated_lectures_get_the_planned_mode(
    lecture_audio: Callable[..., Path], minutes: int, mode: str | None
) -> None:
    path = lecture_audio(minutes)
    measured = MP3(str(path)).info.length
    assert measured == pytest.approx(minutes * 60, abs=0.05)
    assert path.stat().st_size < load_platform().limits.lecture_max_bytes
    assert path.stat().st_size < minutes * 60 * 16000 / 8 + 200_000  # 16 kb/s: 70 min is about 8 MB
    plan = plan_lecture(measured)
    assert plan.mode == mode, plan
    if mode is None:
        assert plan.reason is not None and "longest lecture" in plan.reason
    text = embedded_text(path.read_bytes())
    assert text is not None and 120 * minutes < len(text.split()) < 200 * minutes
