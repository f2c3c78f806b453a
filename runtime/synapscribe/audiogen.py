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
from typing import Literal, NamedTuple

from mutagen import MutagenError
from mutagen.id3 import ID3, TXXX
from mutagen.mp3 import MP3

AudioFormat = Literal["mp3", "wav"]
FORMATS: tuple[str, ...] = ("mp3", "wav")

TEXT_TAG = "synapscribe-text"
TIMELINE_TAG = "synapscribe-timeline"
_WAV_TEXT_PREFIX = TEXT_TAG + ":"
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


class Cue(NamedTuple):
    start: float
    end: float
    text: str


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

_BITRATES = {  # kbps by (MPEG-1?, index), layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frames(data: bytes) -> tuple[list[tuple[int, int]], int, int]:
    """(offset, length) of each layer III frame, the sample rate and samples per frame."""
    frames: list[tuple[int, int]] = []
    pos, rate, per_frame = 0, 0, 0
    while pos + 4 <= len(data):
        b1, b2 = data[pos + 1], data[pos + 2]
        if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
            raise AudioGenError(f"MP3 frame sync lost at byte {pos}")
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        if layer != 1 or version == 1:
            raise AudioGenError("not an MPEG layer III stream")
        bitrate_index, rate_index = (b2 >> 4) & 0xF, (b2 >> 2) & 3
        if bitrate_index in (0, 15) or rate_index == 3:
            raise AudioGenError(f"free-format or invalid MP3 frame header at byte {pos}")
        mpeg1 = version == 3
        kbps = _BITRATES[mpeg1][bitrate_index]
        rate = _RATES[version][rate_index]
        per_frame = 1152 if mpeg1 else 576
        length = (per_frame // 8) * kbps * 1000 // rate + ((b2 >> 1) & 1)
        frames.append((pos, length))
        pos += length
    if not frames:
        raise AudioGenError("no MP3 frames")
    return frames, rate, per_frame


# --- metadata -----------------------------------------------------------------------------------


def _timeline_json(timeline: Sequence[Cue]) -> str:
    return json.dumps([[round(c.start, 3), round(c.end, 3), c.text] for c in timeline], ensure_ascii=False)


def _id3_tag(text: str, timeline: Sequence[Cue]) -> bytes:
    """An ID3v2.4 tag holding the text and the timeline, to put in front of MP3 frames."""
    tags = ID3()
    tags.add(TXXX(encoding=3, desc=TEXT_TAG, text=[text]))
    tags.add(TXXX(encoding=3, desc=TIMELINE_TAG, text=[_timeline_json(timeline)]))
    buf = io.BytesIO()
    tags.save(buf, v2_version=4, padding=lambda _info: 0)
    return buf.getvalue()


def _info_subchunk(chunk_id: bytes, value: str) -> bytes:
    raw = value.encode("utf-8") + b"\0"
    return chunk_id + struct.pack("<I", len(raw)) + raw + (b"\0" if len(raw) % 2 else b"")


def _tag_wav(wav_bytes: bytes, text: str, timeline: Sequence[Cue]) -> bytes:
    """Append a LIST/INFO chunk (ICMT: the text; ITLN: the timeline) and fix the RIFF size."""
    info = b"INFO" + _info_subchunk(b"ICMT", _WAV_TEXT_PREFIX + text)
    info += _info_subchunk(b"ITLN", _timeline_json(timeline))
    body = wav_bytes[12:]
    if len(body) % 2:
        body += b"\0"
    body += b"LIST" + struct.pack("<I", len(info)) + info
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _riff_info(data: bytes) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        start = pos + 8
        if cid == b"LIST" and data[start : start + 4] == b"INFO":
            sub, end = start + 4, min(start + size, len(data))
            while sub + 8 <= end:
                sid, ssize = data[sub : sub + 4], struct.unpack("<I", data[sub + 4 : sub + 8])[0]
                found[sid] = data[sub + 8 : sub + 8 + ssize].rstrip(b"\0").decode("utf-8", "replace")
                sub += 8 + ssize + (ssize % 2)
        pos = start + size + (size % 2)
    return found


def _embedded(data: bytes) -> tuple[str | None, str | None]:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        info = _riff_info(data)
        comment = info.get(b"ICMT", "")
        text = comment[len(_WAV_TEXT_PREFIX) :] if comment.startswith(_WAV_TEXT_PREFIX) else None
        return text, info.get(b"ITLN")
    if data[:3] != b"ID3":
        return None, None
    try:
        tags = ID3(io.BytesIO(data))
    except (MutagenError, ValueError, EOFError, struct.error):
        return None, None
    text_frame = tags.get(f"TXXX:{TEXT_TAG}")
    timeline_frame = tags.get(f"TXXX:{TIMELINE_TAG}")
    return (
        str(text_frame.text[0]) if text_frame is not None else None,
        str(timeline_frame.text[0]) if timeline_frame is not None else None,
    )


def embedded_text(data: bytes) -> str | None:
    """The words generated audio speaks (see the module docstring), or None for other audio."""
    return _embedded(data)[0]


def embedded_timeline(data: bytes) -> list[Cue] | None:
    """When each sentence of generated audio is spoken, or None for other audio."""
    raw = _embedded(data)[1]
    if raw is None:
        return None
    try:
        return [Cue(float(s), float(e), str(t)) for s, e, t in json.loads(raw)]
    except (ValueError, TypeError):
        return None


def duration_seconds(path: Path | str) -> float:
    """Duration as mutagen measures it (the same way the platform measures uploads)."""
    p = Path(path)
    if p.suffix.lower() == ".wav":
        with wave.open(str(p), "rb") as w:
            return w.getnframes() / w.getframerate()
    info = MP3(str(p)).info
    if info is None:
        raise AudioGenError(f"{p}: not an MP3 file")
    return float(info.length)


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
        _write(out, _tag_wav(_pcm_to_wav(pcm, rate), text, timeline))
    else:
        mp3 = _encode_mp3(wav, sample_rate=sample_rate, bitrate_kbps=bitrate_kbps)
        frames, mp3_rate, per_frame = mp3_frames(mp3)
        seconds = len(frames) * per_frame / mp3_rate
        _write(out, _id3_tag(text, timeline) + mp3)
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
        _write(out, _tag_wav(_pcm_to_wav(body, sample_rate), text, timeline))
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
    _write(out, _id3_tag(text, timeline) + block * reps + block[:tail_end])
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
