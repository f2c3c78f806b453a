"""Format and duration of a recording from its header (mutagen, plus small WebM and fragmented-MP4
readers for what browsers record).

`probe` reads through any seekable file object; over S3 that is the edge's `S3RangedFile`, so only
the header (and, for some formats, the tail) is fetched. Every failure is a `ProbeRejection` whose
reason is a sentence a person can act on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import mutagen
from mutagen.aac import AAC
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from synapscribe.audio import mp4, webm
from synapscribe.audio.formats import LABELS, SUPPORTED, id3v2_size, not_audio_reason, sniff
from synapscribe.audio.webm import Reader as SeekableReader

_MUTAGEN_FORMATS: list[Any] = [MP3, MP4, AAC, WAVE, OggVorbis, OggOpus, OggFLAC, OggSpeex, FLAC]
_FORMAT_NAMES = {
    "MP3": "mp3",
    "MP4": "m4a",
    "AAC": "aac",
    "WAVE": "wav",
    "OggVorbis": "ogg",
    "OggOpus": "ogg",
    "OggFLAC": "ogg",
    "OggSpeex": "ogg",
    "FLAC": "flac",
}
__all__ = ["ProbeRejection", "ProbeResult", "ReadBudgetExceeded", "SeekableReader", "probe"]


class ReadBudgetExceeded(Exception):
    """A capped reader (the edge's S3RangedFile) would fetch more than its cap."""


class ProbeRejection(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProbeResult:
    format: str
    duration_seconds: float


def _size(fileobj: SeekableReader) -> int:
    end = fileobj.seek(0, 2)
    fileobj.seek(0)
    return end


def probe(fileobj: SeekableReader, name: str = "") -> ProbeResult:
    """Read format and duration; raise ProbeRejection with an actionable reason.

    The bytes decide the format, never `name` (the upload's file name): a file is read as what
    `formats.sniff` says it is, so every part gets the same answer."""
    try:
        size = _size(fileobj)
        head = fileobj.read(64)
        kind = sniff(_past_id3(fileobj, head))
        if kind is None:
            raise ProbeRejection(not_audio_reason(head))
        fileobj.seek(0)
        duration: float | None
        if kind == "webm":
            duration, fmt = _webm_duration(fileobj, size), "webm"
        elif kind == "aac" and id3v2_size(head):
            # mutagen's ADTS reader does not skip a leading ID3 tag: it reads from after the tag.
            duration, fmt = _mutagen_duration(_From(fileobj, id3v2_size(head)), kind)
        else:
            duration, fmt = _mutagen_duration(fileobj, kind)
        if fmt == "m4a":
            duration = _fragmented(fileobj, size, duration)
        elif fmt == "wav" and duration is not None:
            duration = min(duration, _wav_capacity(fileobj, size))
    except ReadBudgetExceeded:
        raise ProbeRejection(
            "The file's header is unusually large (for example embedded artwork of several megabytes), "
            "so its length cannot be read cheaply. Remove the artwork or export the audio again, then "
            "upload it."
        ) from None
    if duration is None or duration != duration or duration <= 0:
        raise ProbeRejection(
            f"The {LABELS[fmt].upper()} file contains no audio (its duration is zero). Check the "
            "recording and upload it again."
        )
    return ProbeResult(format=fmt, duration_seconds=float(duration))


def _past_id3(fileobj: SeekableReader, head: bytes) -> bytes:
    """`head`, or, after an ID3v2 tag, the tag's first bytes and the 64 after it: `sniff` names what
    follows a tag (some tools tag ADTS and FLAC), as it does for AgentCore's whole recording."""
    tag = id3v2_size(head)
    if not tag:
        return head
    fileobj.seek(tag)
    return head[:10] + bytes(tag - 10) + fileobj.read(64)


def corrupt(kind: str) -> ProbeRejection:
    return ProbeRejection(
        f"The file looks like {LABELS[kind].upper()} audio but cannot be read: it may be damaged or cut "
        f"short. Export or download the recording again and upload the new file ({SUPPORTED})."
    )


def _mutagen_duration(fileobj: SeekableReader, kind: str) -> tuple[float | None, str]:
    try:
        # mutagen scores candidates by header and by file name (ADTS only by its extension), so
        # it is given the name of the format the bytes announce, not the upload's.
        audio = mutagen.File(_Named(fileobj, f"recording.{kind}"), options=_MUTAGEN_FORMATS)
    except ReadBudgetExceeded:
        raise
    except (mutagen.MutagenError, struct.error, ValueError, EOFError, IndexError, OverflowError):
        raise corrupt(kind) from None
    if audio is None or audio.info is None:
        raise corrupt(kind)
    fmt = _FORMAT_NAMES.get(type(audio).__name__, kind)
    length = getattr(audio.info, "length", None)
    return (None if length is None else float(length)), fmt


def _wav_capacity(fileobj: SeekableReader, size: int) -> float:
    """The most audio a WAV of `size` bytes can hold: a recording cut short (or streamed, with a
    placeholder size) claims more in its header than the file carries."""
    audio = mutagen.File(_Named(fileobj, "x.wav"), options=[WAVE])
    info = audio.info if audio is not None else None
    rate = (
        getattr(info, "sample_rate", 0) * getattr(info, "channels", 0) * getattr(info, "bits_per_sample", 0)
    )
    return (size * 8 / rate) if rate > 0 else 0.0


def _fragmented(fileobj: SeekableReader, size: int, header: float | None) -> float | None:
    """A fragmented MP4's length from its last fragment (its header's is 0 or one fragment's)."""
    try:
        seconds = mp4.fragmented_seconds(fileobj, size)
    except mp4.NoAudioTrack:
        raise _no_audio_track("M4A") from None
    except mp4.Mp4Error:
        raise corrupt("m4a") from None
    return header if seconds is None else max(seconds, header or 0.0)


def _no_audio_track(label: str) -> ProbeRejection:
    return ProbeRejection(
        f"The {label} file has no audio track (it is a video without sound). Upload a recording "
        f"with sound ({SUPPORTED})."
    )


def _webm_duration(fileobj: SeekableReader, size: int) -> float:
    try:
        scale, duration, audio = webm.header(fileobj)
        if audio is False:
            raise _no_audio_track("WebM")
        if duration is None:
            # Browsers' live recordings store no duration: the last block's time is the length.
            duration = webm.tail_seconds(fileobj, size, scale)
    except (EOFError, ValueError, struct.error):
        raise corrupt("webm") from None
    if duration is None:
        raise ProbeRejection(
            "The WebM file records no duration in its header and no audio could be found near its "
            "end, so its length cannot be checked: it may be damaged or cut short. Record or export "
            "it again and upload the new file."
        )
    return duration


class _Named:
    """A file object with the name mutagen uses for scoring (without opening any path)."""

    def __init__(self, fileobj: SeekableReader, name: str) -> None:
        self._f = fileobj
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._f, attr)


class _From:
    """The file from `start` on, as a file of its own (seek and tell relative to `start`)."""

    def __init__(self, fileobj: SeekableReader, start: int) -> None:
        self._f = fileobj
        self._start = start
        fileobj.seek(start)

    def read(self, size: int = -1, /) -> bytes:
        return self._f.read(size)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        base = self._f.seek(offset + self._start if whence == 0 else offset, whence)
        return max(0, base - self._start)

    def tell(self) -> int:
        return max(0, self._f.tell() - self._start)
