"""Cutting a lecture into audio items: at most max_item_seconds each, nothing lost, deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
from synapscribe.agentcore import media
from synapscribe.audio import formats
from synapscribe.platform import PlatformConfig
from synapscribe_local import audiogen
from synapscribe_local.standin.tokens import audio_duration_seconds

pytestmark = pytest.mark.needs_tool("espeak-ng")


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> audiogen.GeneratedAudio:
    path = tmp_path_factory.mktemp("lec") / "lecture.mp3"
    return audiogen.make_lecture(path, 2.6)


def test_items_cover_the_lecture_within_the_item_limit(
    lecture: audiogen.GeneratedAudio, platform: PlatformConfig
) -> None:
    data = lecture.path.read_bytes()
    items = media.cut_mp3(data, platform.audio.max_item_seconds)
    assert len(items) == 3
    frames = media.parse_mp3(data)
    # Every frame once, each item after its lead of silent bit-reservoir frames.
    leads = [round(i.lead / frames.frame_seconds) for i in items]
    assert sum(len(media.parse_mp3(i.data).frames) for i in items) - sum(leads) == len(frames.frames)
    for item in items:
        seconds = audio_duration_seconds(item.data, "mp3")  # how the model server measures it
        assert seconds <= platform.audio.max_item_seconds
        assert abs(seconds - item.seconds) < 0.1
    assert items[0].start == 0 and abs(items[-1].end - lecture.duration_seconds) < 0.05


def test_cutting_is_byte_for_byte_deterministic(lecture: audiogen.GeneratedAudio) -> None:
    data = lecture.path.read_bytes()
    assert [i.data for i in media.cut_mp3(data, 60)] == [i.data for i in media.cut_mp3(data, 60)]


def test_each_item_carries_its_own_part_of_the_timeline(lecture: audiogen.GeneratedAudio) -> None:
    items = media.cut_mp3(lecture.path.read_bytes(), 60)
    texts = [audiogen.embedded_text(i.data) or "" for i in items]
    assert texts[0].startswith("Welcome to today's lecture on photosynthesis.")
    assert not texts[1].startswith("Welcome")
    assert sum(len(t) for t in texts) < len(lecture.text) * 1.1
    for item in items:
        cues = audiogen.embedded_timeline(item.data) or []
        # Cue times are the item's own: after its lead of silence, within its duration.
        assert cues and all(item.lead <= c.start < c.end <= item.seconds + 1e-6 for c in cues)


def test_sniffing_and_duration(lecture: audiogen.GeneratedAudio, tmp_path: Path) -> None:
    data = lecture.path.read_bytes()
    assert formats.sniff(data) == "mp3"
    wav = audiogen.speak("A short question?", tmp_path / "q.wav", "wav")
    wav_bytes = wav.path.read_bytes()
    assert formats.sniff(wav_bytes) == "wav"
    assert abs(media.duration_seconds(wav_bytes, "wav") - wav.duration_seconds) < 0.01
    assert formats.sniff(b"not audio at all") is None
    with pytest.raises(media.MediaError):
        media.duration_seconds(b"RIFF0000WAVEjunk", "wav")
    with pytest.raises(media.MediaError, match="no audio frames"):
        media.parse_mp3(b"\x00" * 1000)


async def test_other_formats_are_converted_to_mp3(tmp_path: Path) -> None:
    wav = audiogen.speak("Convert me please.", tmp_path / "c.wav", "wav")
    mp3 = await media.to_mp3(wav.path.read_bytes())
    assert formats.sniff(mp3) == "mp3"
    assert abs(media.duration_seconds(mp3, "mp3") - wav.duration_seconds) < 0.2
    # Bytes in no accepted format are refused by name before ffmpeg (which reads far more) sees them.
    with pytest.raises(media.MediaError, match=r"not an audio recording \(it is a text file\)"):
        await media.to_mp3(b"garbage bytes")
    with pytest.raises(media.MediaError, match=r"WAV recording cannot be decoded.*ffmpeg failed"):
        await media.to_mp3(wav.path.read_bytes()[:30])


def test_item_bounds_are_equal_and_within_the_limit() -> None:
    bounds = media.item_bounds(125.0, 60)
    assert len(bounds) == 3
    assert bounds[0][0] == 0 and bounds[-1][1] == 125.0
    assert all(b - a <= 60 for a, b in bounds)
