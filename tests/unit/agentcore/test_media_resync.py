"""MP3 parsing never stops silently at bytes that are not audio: it resynchronises on the next
frame of the same stream, cut items hold only audio frames, and a cut that covers less than the
measured duration is refused by `check_complete`."""

from __future__ import annotations

import io

import pytest
from mutagen.id3 import ID3, TIT2
from required_tools import require_tools
from synapscribe.agentcore import media
from synapscribe_local.standin.tokens import audio_duration_seconds


def _tone(seconds: float, rate: int = 16000, freq: int = 440) -> bytes:
    require_tools("ffmpeg")
    import subprocess

    return subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"sine=f={freq}:d={seconds}", "-ac", "1", "-ar", str(rate), "-b:a", "32k",
            "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", "pipe:1",
        ],
        check=True,
        capture_output=True,
    ).stdout  # fmt: skip


def _id3(title: str) -> bytes:
    tags = ID3()
    tags.add(TIT2(encoding=3, text=[title]))
    out = io.BytesIO()
    tags.save(out, v2_version=4, padding=lambda info: 0)
    return out.getvalue()


@pytest.fixture(scope="module")
def tone20() -> bytes:
    return _tone(20)


def _middle(data: bytes) -> int:
    frames = media.parse_mp3(data).frames
    return frames[len(frames) // 2][0]


def test_junk_in_the_middle_is_skipped_not_the_end(tone20: bytes) -> None:
    whole = media.parse_mp3(tone20)
    assert whole.seconds == pytest.approx(20, abs=0.1) and whole.skipped == []
    mid = _middle(tone20)
    damaged = tone20[:mid] + b"junk-junk-12" + tone20[mid:]
    parsed = media.parse_mp3(damaged)
    assert len(parsed.frames) == len(whole.frames)  # all 20 s, not the first 10
    assert parsed.skipped == [(mid, 12)]


def test_junk_with_a_false_sync_word_is_not_taken_for_a_frame(tone20: bytes) -> None:
    mid = _middle(tone20)
    # 0xFF 0xF3 ... looks like an MPEG-2 layer III header but no frame follows where it says.
    junk = b"\xff\xf3\x44\xc4" + b"\x00" * 9
    parsed = media.parse_mp3(tone20[:mid] + junk + tone20[mid:])
    assert len(parsed.frames) == len(media.parse_mp3(tone20).frames)
    assert parsed.skipped == [(mid, len(junk))]


def test_two_recordings_joined_with_a_tag_between_them(tone20: bytes) -> None:
    second = _tone(7, freq=660)
    joined = _id3("part one") + tone20 + _id3("part two") + second
    parsed = media.parse_mp3(joined)
    assert len(parsed.frames) == len(media.parse_mp3(tone20).frames) + len(media.parse_mp3(second).frames)
    assert parsed.seconds == pytest.approx(27, abs=0.3)  # plus the encoder's padding
    items = media.cut_mp3(joined, 60)
    assert len(items) == 1 and items[0].end == pytest.approx(parsed.seconds)
    # The item is audio frames only: the tag between the parts is not inside it.
    assert b"part two" not in items[0].data
    assert audio_duration_seconds(items[0].data, "mp3") == pytest.approx(parsed.seconds, abs=0.1)


def test_cut_items_hold_every_frame_and_no_junk(tone20: bytes) -> None:
    mid = _middle(tone20)
    damaged = tone20[:mid] + b"JUNKJUNKJUNK" + tone20[mid:]
    items = media.cut_mp3(damaged, 6)
    assert len(items) == 4 and all(i.end - i.start <= 6 for i in items)
    leads = sum(round(i.lead / media.parse_mp3(tone20).frame_seconds) for i in items)
    assert sum(len(media.parse_mp3(i.data).frames) for i in items) - leads == len(
        media.parse_mp3(tone20).frames
    )
    assert all(b"JUNK" not in i.data for i in items)
    assert sum(i.end - i.start for i in items) == pytest.approx(media.parse_mp3(tone20).seconds)


def test_id3v1_at_the_end_is_not_counted_as_skipped(tone20: bytes) -> None:
    v1 = b"TAG" + b"title".ljust(30, b"\x00") + b"\x00" * 94
    parsed = media.parse_mp3(tone20 + v1)
    assert parsed.skipped == [] and len(parsed.frames) == len(media.parse_mp3(tone20).frames)


def test_a_stream_of_another_sample_rate_is_skipped_and_reported(tone20: bytes) -> None:
    other = _tone(5, rate=22050)
    parsed = media.parse_mp3(tone20 + other)
    assert parsed.seconds == pytest.approx(20, abs=0.1)
    assert parsed.skipped == [(len(tone20), len(other))]
    with pytest.raises(media.MediaError, match=r"only 20\.\d s of its measured 25\.\d s"):
        media.check_complete(parsed.seconds, 25.1)


@pytest.mark.parametrize(
    ("cut", "measured", "ok"),
    [
        (20.0, 20.0, True),
        (18.1, 20.0, True),  # within 2 s
        (17.9, 20.0, False),
        (10.0, 20.0, False),  # the reviewer's case: half of it
        (1470.0, 1500.0, True),  # within 2 % of 25 minutes
        (1465.0, 1500.0, False),
        (30.0, 20.0, True),  # longer than measured is not a loss
    ],
)
def test_check_complete_tolerance(cut: float, measured: float, ok: bool) -> None:
    if ok:
        media.check_complete(cut, measured)
    else:
        with pytest.raises(media.MediaError, match="could be read as audio"):
            media.check_complete(cut, measured)


def test_nothing_but_junk_is_still_refused() -> None:
    with pytest.raises(media.MediaError, match="no audio frames"):
        media.parse_mp3(b"\xff\xf3" + b"\x00" * 400)
