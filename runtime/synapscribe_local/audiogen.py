"""Generated speech for tests, the demo, the smoke test and benchmarks (espeak-ng, sox, ffmpeg).

`speak()` makes a short spoken question; `make_lecture()` makes a lecture of an exact duration
cheaply: a handful of sentences is synthesized and encoded once, then the encoded MP3 frames are
repeated (and the last repetition cut at a frame boundary) until the duration is reached, so a
70-minute lecture takes about as long as a one-minute one.

How the model stand-in "hears": every generated file carries the words it speaks, embedded in
the file itself (no sidecar):

- MP3: ID3v2 frames `TXXX:synapscribe-text` (the spoken text) and `TXXX:synapscribe-timeline`
  (JSON list of `[start_s, end_s, sentence]`).
- WAV: a `LIST`/`INFO` chunk whose `ICMT` holds `synapscribe-text:<text>` and whose `ITLN`
  sub-chunk holds the timeline JSON.

`embedded_text(data)` and `embedded_timeline(data)` read them back. The stand-in uses them to
"transcribe" generated audio: it reports exactly what the audio says, and nothing for audio that
was not generated here (real recordings have no such tag). Tools that re-encode the audio
(ffmpeg to WAV, cutting into segments) may drop or copy these tags; cut segments should use the
timeline with their offset.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import secrets
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from synapscribe.audio import frames as mp3
from synapscribe.audio.formats import MediaError
from synapscribe.audio.probe import ProbeRejection, probe
from synapscribe.audio.tags import (
    TEXT_TAG,
    TIMELINE_TAG,
    Cue,
    embedded_text,
    embedded_timeline,
    id3_tag,
    tag_wav,
)

AudioFormat = Literal["mp3", "wav"]
FORMATS: tuple[str, ...] = ("mp3", "wav")

__all__ = ["TEXT_TAG", "TIMELINE_TAG", "Cue", "embedded_text", "embedded_timeline"]
#: Bump when the generated audio changes, so cached lectures are made again.
GENERATOR_VERSION = 1
CACHE_ENV = "SYNAPSCRIBE_AUDIO_CACHE"

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_BITRATE_KBPS = 16
_TOOL_TIMEOUT_SECONDS = 120
_PAUSE_SECONDS = 0.35

#: A short lecture on photosynthesis: about a minute of speech, repeated to any length.
DEFAULT_LECTURE: tuple[str, ...] = (
    "Welcome to today's lecture on photosynthesis.",
    "Photosynthesis is the process by which plants turn light into chemical energy.",
    "It takes place in the chloroplasts, which contain the green pigment chlorophyll.",
    "In the light dependent reactions, water is split and oxygen is released.",
    "These reactions produce the energy carriers A T P and N A D P H.",
    "In the Calvin cycle, the enzyme rubisco fixes carbon dioxide from the air.",
    "The cycle uses A T P and N A D P H to build a three carbon sugar.",
    "Plants use that sugar to make glucose, starch and cellulose.",
    "The rate of photosynthesis depends on light, carbon dioxide and temperature.",
    "Remember: six carbon dioxide plus six water gives one glucose plus six oxygen.",
)


class AudioGenError(RuntimeError):
    """A tool is missing or failed, or the arguments cannot produce audio."""


def _cue(start: float, end: float, text: str) -> Cue:
    """Times in milliseconds' precision, as embedded."""
    return Cue(round(start, 3), round(end, 3), text)


@dataclass(frozen=True)
class GeneratedAudio:
    path: Path
    duration_seconds: float
    text: str
    timeline: tuple[Cue, ...]


# --- tools --------------------------------------------------------------------------------------


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise AudioGenError(f"missing audio tool(s): {', '.join(missing)} (install espeak-ng, sox, ffmpeg)")


def _run(cmd: Sequence[str], *, stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(list(cmd), input=stdin, capture_output=True, timeout=_TOOL_TIMEOUT_SECONDS)
    except FileNotFoundError:
        raise AudioGenError(f"missing audio tool: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise AudioGenError(f"{cmd[0]} took longer than {_TOOL_TIMEOUT_SECONDS} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise AudioGenError(f"{cmd[0]} failed (exit {proc.returncode}): {err}")
    return proc.stdout


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise AudioGenError("text to speak is empty")
    return " ".join(text.split())


def espeak_wav(text: str, voice: str = "en", words_per_minute: int | None = None) -> bytes:
    """espeak-ng's WAV (22050 Hz mono) for `text`; the text goes through stdin, never argv."""
    cmd = ["espeak-ng", "--stdin", "-v", voice, "--stdout"]
    if words_per_minute is not None:
        cmd += ["-s", str(words_per_minute)]
    data = _run(cmd, stdin=_check_text(text).encode("utf-8"))
    if not data.startswith(b"RIFF"):
        raise AudioGenError(f"espeak-ng produced no audio for voice {voice!r}")
    return _fix_streamed_wav(data)


def _read_pcm(wav_bytes: bytes) -> tuple[bytes, int]:
    """PCM frames and sample rate of a 16-bit mono WAV (espeak-ng's streamed header is tolerated)."""
    with wave.open(io.BytesIO(_fix_streamed_wav(wav_bytes)), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise AudioGenError("expected 16-bit mono audio from espeak-ng")
        return w.readframes(w.getnframes()), w.getframerate()


def _fix_streamed_wav(data: bytes) -> bytes:
    """espeak-ng --stdout writes 0x7fffffff-ish sizes; rewrite RIFF and data sizes from the bytes."""
    pos = data.find(b"data", 12)
    if pos < 0:
        raise AudioGenError("malformed WAV from espeak-ng (no data chunk)")
    body = data[pos + 8 :]
    body = body[: len(body) - (len(body) % 2)]
    head = bytearray(data[:pos])
    head[4:8] = struct.pack("<I", len(head) - 8 + 8 + len(body))
    return bytes(head) + b"data" + struct.pack("<I", len(body)) + body


def _pcm_to_wav(pcm: bytes, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def _encode_mp3(wav_bytes: bytes, *, sample_rate: int, bitrate_kbps: int) -> bytes:
    """Constant bit rate mono MP3 with no Xing/LAME header and no tags, so frames can be repeated."""
    cmd = "ffmpeg -hide_banner -loglevel error -f wav -i pipe:0 -map_metadata -1 -ac 1 -c:a libmp3lame"
    cmd += f" -ar {sample_rate} -b:a {bitrate_kbps}k -write_xing 0 -id3v2_version 0 -f mp3 pipe:1"
    return _run(cmd.split(), stdin=wav_bytes)


def _resample_wav(wav_bytes: bytes, sample_rate: int) -> bytes:
    return _run(
        ["sox", "-t", "wav", "-", "-t", "wav", "-r", str(sample_rate), "-c", "1", "-b", "16", "-"],
        stdin=wav_bytes,
    )


# --- MP3 frames ---------------------------------------------------------------------------------


def mp3_frames(data: bytes) -> tuple[list[tuple[int, int]], int, int]:
    """(offset, length) of each layer III frame, the sample rate and samples per frame (strict:
    the generator repeats frames it encoded itself, so anything else is an error)."""
    try:
        return mp3.walk(data)
    except MediaError as exc:
        raise AudioGenError(str(exc)) from None


def duration_seconds(path: Path | str) -> float:
    """Duration as the platform measures uploads (synapscribe.audio.probe), whatever the name."""
    p = Path(path)
    with p.open("rb") as f:
        try:
            return probe(f, p.name).duration_seconds
        except ProbeRejection as exc:
            raise AudioGenError(f"{p}: {exc.reason}") from None


# --- generation ---------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a reader (another test process using the cache) sees all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would make generated audio readable only by its owner. 0666 minus
    # the umask is what any other written file gets (0644 with the usual umask 022).
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise AudioGenError(f"unknown audio format {fmt!r}; use one of {', '.join(FORMATS)}")


def speak(
    text: str,
    path: Path | str,
    fmt: str = "mp3",
    *,
    voice: str = "en",
    words_per_minute: int | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    bitrate_kbps: int = 32,
) -> GeneratedAudio:
    """Speak `text` into `path` (a short question, a sentence) with the text embedded."""
    _check_format(fmt)
    text = _check_text(text)
    require_tools("espeak-ng", "sox", "ffmpeg")
    wav = _resample_wav(espeak_wav(text, voice, words_per_minute), sample_rate)
    pcm, rate = _read_pcm(wav)
    seconds = len(pcm) / 2 / rate
    timeline = (_cue(0.0, seconds, text),)
    out = Path(path)
    if fmt == "wav":
        _write(out, tag_wav(_pcm_to_wav(pcm, rate), text, timeline))
    else:
        mp3 = _encode_mp3(wav, sample_rate=sample_rate, bitrate_kbps=bitrate_kbps)
        frames, mp3_rate, per_frame = mp3_frames(mp3)
        seconds = len(frames) * per_frame / mp3_rate
        _write(out, id3_tag(text, timeline) + mp3)
    return GeneratedAudio(out, seconds, text, timeline)


@functools.lru_cache(maxsize=8)
def _lecture_block(
    sentences: tuple[str, ...], voice: str, rate: int, words_per_minute: int | None
) -> tuple[bytes, tuple[Cue, ...]]:
    """PCM of all sentences once, with pauses, at `rate`; and when each sentence is spoken.

    Cached in the process: a test session making lectures of several lengths synthesizes once.
    """
    pieces: list[bytes] = []
    cues: list[Cue] = []
    pause = b"\0\0" * int(_PAUSE_SECONDS * rate)
    t = 0.0
    for sentence in sentences:
        pcm, _ = _read_pcm(_resample_wav(espeak_wav(sentence, voice, words_per_minute), rate))
        seconds = len(pcm) / 2 / rate
        cues.append(Cue(t, t + seconds, " ".join(sentence.split())))
        pieces += [pcm, pause]
        t += seconds + _PAUSE_SECONDS
    return b"".join(pieces), tuple(cues)


def _repeat_cues(cues: Sequence[Cue], block_seconds: float, total_seconds: float) -> list[Cue]:
    out: list[Cue] = []
    offset = 0.0
    while offset < total_seconds:
        for c in cues:
            if offset + c.start >= total_seconds:
                return out
            out.append(_cue(offset + c.start, min(offset + c.end, total_seconds), c.text))
        offset += block_seconds
    return out


@functools.lru_cache(maxsize=8)
def _encoded_block(pcm: bytes, sample_rate: int, bitrate_kbps: int) -> bytes:
    return _encode_mp3(_pcm_to_wav(pcm, sample_rate), sample_rate=sample_rate, bitrate_kbps=bitrate_kbps)


def make_lecture(
    path: Path | str,
    minutes: float,
    fmt: str = "mp3",
    *,
    sentences: Sequence[str] = DEFAULT_LECTURE,
    voice: str = "en",
    words_per_minute: int | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
) -> GeneratedAudio:
    """A spoken lecture of `minutes` (to within one MP3 frame, 36 ms at 16 kHz), text embedded."""
    _check_format(fmt)
    if not 0 < minutes <= 24 * 60:
        raise AudioGenError(f"lecture minutes must be > 0 and at most {24 * 60} (got {minutes})")
    if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
        raise AudioGenError("a lecture needs at least one non-empty sentence")
    require_tools("espeak-ng", "sox", "ffmpeg")
    total = minutes * 60.0
    out = Path(path)
    pcm, cues = _lecture_block(tuple(sentences), voice, sample_rate, words_per_minute)
    if fmt == "wav":
        samples = round(total * sample_rate)
        reps, rest = divmod(samples * 2, len(pcm))
        body = pcm * reps + pcm[:rest]
        block_seconds = len(pcm) / 2 / sample_rate
        timeline = _repeat_cues(cues, block_seconds, total)
        text = " ".join(c.text for c in timeline)
        _write(out, tag_wav(_pcm_to_wav(body, sample_rate), text, timeline))
        return GeneratedAudio(out, samples / sample_rate, text, tuple(timeline))
    block = _encoded_block(pcm, sample_rate, bitrate_kbps)
    frames, rate, per_frame = mp3_frames(block)
    frame_seconds = per_frame / rate
    target = max(1, round(total / frame_seconds))
    reps, rest = divmod(target, len(frames))
    tail_end = frames[rest - 1][0] + frames[rest - 1][1] if rest else 0
    seconds = target * frame_seconds
    timeline = _repeat_cues(cues, len(frames) * frame_seconds, seconds)
    text = " ".join(c.text for c in timeline)
    _write(out, id3_tag(text, timeline) + block * reps + block[:tail_end])
    return GeneratedAudio(out, seconds, text, tuple(timeline))


# --- cache --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / "synapscribe-audio-cache"


def cached_lecture(
    minutes: float,
    fmt: str = "mp3",
    *,
    cache_dir: Path | str | None = None,
    sentences: Sequence[str] = DEFAULT_LECTURE,
    voice: str = "en",
    bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
) -> Path:
    """A lecture from the cache (`SYNAPSCRIBE_AUDIO_CACHE` or `cache_dir`), made once if missing."""
    _check_format(fmt)
    key = json.dumps(
        [GENERATOR_VERSION, minutes, fmt, list(sentences), voice, bitrate_kbps, DEFAULT_SAMPLE_RATE]
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"lecture-{minutes:g}min-{digest}.{fmt}"
    if not path.exists():
        make_lecture(path, minutes, fmt, sentences=sentences, voice=voice, bitrate_kbps=bitrate_kbps)
    return path


def cached_speech(
    text: str, fmt: str = "mp3", *, cache_dir: Path | str | None = None, voice: str = "en"
) -> Path:
    """A spoken question from the cache, made once if missing."""
    _check_format(fmt)
    digest = hashlib.sha256(json.dumps([GENERATOR_VERSION, text, fmt, voice]).encode("utf-8")).hexdigest()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"speech-{digest[:16]}.{fmt}"
    if not path.exists():
        speak(text, path, fmt, voice=voice)
    return path
