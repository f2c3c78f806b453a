"""Generated speech: durations as mutagen measures them, the embedded text, the cache, errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.mp3 import MP3
from synapscribe.cli import main
from synapscribe_local.audiogen import (
    DEFAULT_LECTURE,
    AudioGenError,
    cached_lecture,
    duration_seconds,
    embedded_text,
    embedded_timeline,
    make_lecture,
    mp3_frames,
    speak,
)

FRAME = 576 / 16000  # one MPEG-2 layer III frame at 16 kHz


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_speak_embeds_the_text_it_speaks(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"q.{fmt}"
    result = speak("What does  rubisco\ndo?", out, fmt)
    data = out.read_bytes()
    assert embedded_text(data) == "What does rubisco do?"
    assert result.text == "What does rubisco do?"
    timeline = embedded_timeline(data)
    assert timeline is not None and len(timeline) == 1 and timeline[0].text == result.text
    assert 0.8 < duration_seconds(out) < 4.0
    assert duration_seconds(out) == pytest.approx(result.duration_seconds, abs=0.01)


def test_wav_is_a_plain_16khz_mono_wav_that_tools_read(tmp_path: Path) -> None:
    out = tmp_path / "q.wav"
    speak("Hello there.", out, "wav")
    soxi = subprocess.run(["soxi", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Sample Rate    : 16000" in soxi and "Channels       : 1" in soxi


def test_audio_that_was_not_generated_here_has_no_text(tmp_path: Path) -> None:
    tone = tmp_path / "tone.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-metadata", "comment=hello", str(tone)],
        check=True,
    )
    assert embedded_text(tone.read_bytes()) is None
    assert embedded_timeline(tone.read_bytes()) is None
    assert embedded_text(b"") is None
    assert embedded_text(b"RIFF\x04\x00\x00\x00WAVE") is None
    assert embedded_text(b"ID3\x04\x00garbage") is None


@pytest.mark.parametrize(("minutes", "fmt"), [(0.5, "mp3"), (1.75, "mp3"), (0.4, "wav")])
def test_lecture_duration_is_exact_to_one_frame(tmp_path: Path, minutes: float, fmt: str) -> None:
    out = tmp_path / f"lecture.{fmt}"
    result = make_lecture(out, minutes, fmt)
    measured = duration_seconds(out)
    assert measured == pytest.approx(minutes * 60, abs=FRAME)
    assert result.duration_seconds == pytest.approx(measured, abs=0.002)


def test_lecture_mp3_is_low_bitrate_mono_and_decodes_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "lecture.mp3"
    make_lecture(out, 2)
    info = MP3(str(out)).info
    assert (info.channels, info.sample_rate, info.bitrate) == (1, 16000, 16000)
    assert out.stat().st_size < 2 * 60 * 16000 / 8 * 1.1  # 16 kb/s plus the tag
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
        capture_output=True,
        check=True,
    )
    assert decoded.stderr == b""
    assert len(decoded.stdout) / 2 / 16000 == pytest.approx(120, abs=0.2)


def test_lecture_text_and_timeline_cover_the_whole_recording(tmp_path: Path) -> None:
    out = tmp_path / "lecture.mp3"
    result = make_lecture(out, 3)
    data = out.read_bytes()
    text = embedded_text(data)
    timeline = embedded_timeline(data)
    assert text == result.text and timeline == list(result.timeline)
    assert text is not None and timeline is not None
    assert text.startswith(DEFAULT_LECTURE[0])
    assert text.count(DEFAULT_LECTURE[0]) >= 2  # the block repeats
    starts = [c.start for c in timeline]
    assert starts == sorted(starts) and all(c.end > c.start for c in timeline)
    assert timeline[-1].start < 180 and timeline[-1].end <= 180.0 + 1e-6
    assert " ".join(c.text for c in timeline) == text
    # about 150 spoken words a minute, as the planner's transcript estimate assumes
    assert 100 < len(text.split()) / 3 < 200


def test_custom_sentences(tmp_path: Path) -> None:
    out = tmp_path / "lecture.wav"
    result = make_lecture(out, 0.25, "wav", sentences=["Entropy always increases.", "Heat flows to cold."])
    assert embedded_text(out.read_bytes()) == result.text
    assert "Entropy always increases." in result.text and "photosynthesis" not in result.text


def test_mp3_frames_walks_the_stream(tmp_path: Path) -> None:
    out = tmp_path / "lecture.mp3"
    make_lecture(out, 0.5)
    body = out.read_bytes()
    body = body[body.index(b"\xff\xf3") :] if b"\xff\xf3" in body else body
    frames, rate, per_frame = mp3_frames(body[body.find(b"\xff") :])
    assert (rate, per_frame) == (16000, 576)
    assert len(frames) == round(30 / FRAME)
    with pytest.raises(AudioGenError, match="sync"):
        mp3_frames(b"\xff\xf3\x14\x00" + b"\0" * 100)


def test_cached_lecture_is_made_once(tmp_path: Path) -> None:
    first = cached_lecture(0.2, cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    second = cached_lecture(0.2, cache_dir=tmp_path)
    assert second == first and second.stat().st_mtime_ns == stamp
    assert cached_lecture(0.3, cache_dir=tmp_path) != first


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: speak("   ", p / "x.mp3"), "empty"),
        (lambda p: speak("Hi.", p / "x.ogg", "ogg"), "unknown audio format 'ogg'"),
        (lambda p: speak("Hi.", p / "x.mp3", voice="zzqq"), "espeak-ng failed"),
        (lambda p: make_lecture(p / "x.mp3", 0), "minutes must be > 0"),
        (lambda p: make_lecture(p / "x.mp3", 1, sentences=[]), "at least one non-empty sentence"),
    ],
)
def test_bad_arguments_are_refused_and_write_nothing(
    tmp_path: Path, call: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(AudioGenError, match=message):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_lecture_and_reports_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "l.mp3"
    assert main(["sample-audio", "--out", str(out), "--lecture-minutes", "0.5"]) == 0
    report = capsys.readouterr().out
    assert f"{duration_seconds(out):.3f} s of speech" in report and "generated in" in report
    assert duration_seconds(out) == pytest.approx(30, abs=FRAME)


def test_cli_speaks_text_in_the_format_of_the_suffix(tmp_path: Path) -> None:
    out = tmp_path / "q.wav"
    assert main(["sample-audio", "--out", str(out), "--text", "Why is the sky blue?"]) == 0
    assert out.read_bytes()[:4] == b"RIFF"
    assert embedded_text(out.read_bytes()) == "Why is the sky blue?"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--text", "hi"], "--out"),
        (["--out", "x.mp3"], "--text"),
        (["--out", "x.mp3", "--text", "hi", "--lecture-minutes", "3"], "--lecture-minutes"),
        (["--out", "x.mp3", "--lecture-minutes", "-3"], "--lecture-minutes"),
        (["--out", "x.mp3", "--text", "hi", "--format", "flac"], "--format"),
    ],
)
def test_cli_bad_flags_exit_2_naming_the_flag(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sample-audio", *args])
    assert info.value.code == 2
    assert flag in capsys.readouterr().err


def test_concurrent_cache_users_get_one_complete_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: cached_lecture(0.3, cache_dir=tmp_path), range(4)))
    assert len(set(paths)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]  # no temporary files left
    assert embedded_text(paths[0].read_bytes()) is not None
    assert duration_seconds(paths[0]) == pytest.approx(18, abs=FRAME)


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_reading_damaged_files_never_raises(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"q.{fmt}"
    speak("Is this damaged?", out, fmt)
    data = out.read_bytes()
    for cut in range(0, min(len(data), 1200), 7):
        embedded_text(data[:cut])
        embedded_timeline(data[:cut])
    flipped = bytearray(data)
    for i in range(4, min(len(flipped), 600), 13):
        flipped[i] ^= 0xFF
        embedded_text(bytes(flipped))
        embedded_timeline(bytes(flipped))
    assert embedded_text(data) == "Is this damaged?"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\xff\xf3\xf4\x00", "invalid MP3 frame header"),  # bitrate index 15
        (b"\xff\xf3\x1c\x00", "invalid MP3 frame header"),  # sample rate index 3
        (b"\xff\xf3\x04\x00", "invalid MP3 frame header"),  # free format
        (b"\xff\xfd\x14\x00", "not an MPEG layer III"),  # layer II
        (b"\0\0", "sync lost at byte 0"),
    ],
)
def test_mp3_frames_refuses_what_it_cannot_repeat(header: bytes, message: str) -> None:
    with pytest.raises(AudioGenError, match=message):
        mp3_frames(header + b"\0" * 200)
    with pytest.raises(AudioGenError, match="no MP3 frames"):
        mp3_frames(b"\xff")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--out", "x.ogg"], "'x.ogg' ends in .ogg but sample-audio writes mp3 or wav: name it x.mp3"),
        (["--out", "x.wav", "--format", "mp3"], "'x.wav' ends in .wav but --format mp3: name it x.mp3"),
        (["--out", "x.MP3", "--format", "wav"], "ends in .mp3 but --format wav"),
    ],
)
def test_cli_refuses_a_suffix_that_is_not_the_format_written(
    tmp_path: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    assert main(["sample-audio", *args, "--text", "hi"]) == 2
    err = capsys.readouterr().err
    assert "argument --out" in err and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_without_a_suffix_writes_mp3(tmp_path: Path) -> None:
    out = tmp_path / "question"
    assert main(["sample-audio", "--out", str(out), "--text", "Why?"]) == 0
    assert MP3(out).info.length > 0


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_audio_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Generated audio holds no secret: readable like any file the user writes (mkstemp's 0600 was not)."""
    old = os.umask(umask)
    try:
        speak("Who can read this?", tmp_path / "q.mp3", "mp3")
    finally:
        os.umask(old)
    assert (tmp_path / "q.mp3").stat().st_mode & 0o777 == mode
