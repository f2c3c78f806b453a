"""Format and duration of a recording from its header (mutagen, plus a small WebM reader).

`probe` reads through any seekable file object; over S3 that is `S3RangedFile`, so only the
header (and, for some formats, the tail) is fetched. Every failure is a `ProbeRejection` whose
reason is a sentence a person can act on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol

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

from synapscribe.edge.s3_ranged import ReadBudgetExceeded

SUPPORTED = "MP3, M4A, AAC, WAV, OGG, WebM or FLAC"

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


class SeekableReader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class ProbeRejection(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProbeResult:
    format: str
    duration_seconds: float


def sniff(head: bytes) -> str | None:
    """The container a file's first bytes announce, or None if they are no audio we know."""
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean ADTS (AAC).
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"ADIF"):
        return "aac"
    return None


def _describe_non_audio(head: bytes) -> str:
    if not head.strip():
        return "it contains only blank bytes"
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "it is an image"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive or office document"
    try:
        head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "its contents are not a known audio format"
    return "it is a text file"


def probe(fileobj: SeekableReader, name: str) -> ProbeResult:
    """Read format and duration; raise ProbeRejection with an actionable reason."""
    try:
        fileobj.seek(0)
        head = fileobj.read(64)
        kind = sniff(head)
        if kind is None:
            raise ProbeRejection(
                f"The file is not an audio recording ({_describe_non_audio(head)}). "
                f"Upload the lecture as {SUPPORTED}."
            )
        fileobj.seek(0)
        if kind == "webm":
            duration = _webm_duration(fileobj)
            fmt = "webm"
        else:
            duration, fmt = _mutagen_duration(fileobj, name, kind)
    except ReadBudgetExceeded:
        raise ProbeRejection(
            "The file's header is unusually large (for example embedded artwork of several megabytes), "
            "so its length cannot be read cheaply. Remove the artwork or export the audio again, then "
            "upload it."
        ) from None
    if duration is None or duration != duration or duration <= 0:
        raise ProbeRejection(
            f"The {fmt.upper()} file contains no audio (its duration is zero). Check the recording and "
            "upload it again."
        )
    return ProbeResult(format=fmt, duration_seconds=float(duration))


def _corrupt(kind: str) -> ProbeRejection:
    return ProbeRejection(
        f"The file looks like {kind.upper()} audio but cannot be read: it may be damaged or cut short. "
        f"Export or download the recording again and upload the new file ({SUPPORTED})."
    )


def _mutagen_duration(fileobj: SeekableReader, name: str, kind: str) -> tuple[float | None, str]:
    try:
        # mutagen scores candidates by header and by file name; the name is the server-chosen
        # key, whose extension follows the declared content type.
        audio = mutagen.File(_Named(fileobj, name), options=_MUTAGEN_FORMATS)
    except ReadBudgetExceeded:
        raise
    except (mutagen.MutagenError, struct.error, ValueError, EOFError, IndexError, OverflowError):
        raise _corrupt(kind) from None
    if audio is None or audio.info is None:
        raise _corrupt(kind)
    fmt = _FORMAT_NAMES.get(type(audio).__name__, kind)
    return getattr(audio.info, "length", None), fmt


class _Named:
    """A file object with the name mutagen uses for scoring (without opening any path)."""

    def __init__(self, fileobj: SeekableReader, name: str) -> None:
        self._f = fileobj
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._f, attr)


# --------------------------------------------------------------------------- WebM (EBML)

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMECODE_SCALE = 0x2AD7B1
_DURATION = 0x4489
_CLUSTER = 0x1F43B675
_UNKNOWN_SIZE = -1


def _vint(fileobj: SeekableReader, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer: (value, length in bytes)."""
    first = fileobj.read(1)
    if not first:
        raise EOFError
    b0 = first[0]
    length = next((i + 1 for i in range(8) if b0 & (0x80 >> i)), 0)
    if length == 0:
        raise ValueError("invalid EBML varint")
    rest = fileobj.read(length - 1)
    if len(rest) != length - 1:
        raise EOFError
    value = b0 if keep_marker else b0 & (0xFF >> length)
    for byte in rest:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return _UNKNOWN_SIZE, length
    return value, length


def _webm_duration(fileobj: SeekableReader) -> float | None:
    try:
        ident, _ = _vint(fileobj, keep_marker=True)
        size, _ = _vint(fileobj, keep_marker=False)
        if ident != _EBML or size < 0:
            raise _corrupt("webm")
        fileobj.seek(size, 1)
        ident, _ = _vint(fileobj, keep_marker=True)
        _segment_size, _ = _vint(fileobj, keep_marker=False)
        if ident != _SEGMENT:
            raise _corrupt("webm")
        for _ in range(64):  # top-level elements before Info: SeekHead, Void, ...
            ident, _ = _vint(fileobj, keep_marker=True)
            size, _ = _vint(fileobj, keep_marker=False)
            if ident == _CLUSTER or size == _UNKNOWN_SIZE:
                break
            if ident != _INFO:
                fileobj.seek(size, 1)
                continue
            end = fileobj.tell() + size
            scale, duration = 1_000_000, None
            while fileobj.tell() < end:
                child, _ = _vint(fileobj, keep_marker=True)
                csize, _ = _vint(fileobj, keep_marker=False)
                data = fileobj.read(csize)
                if child == _TIMECODE_SCALE:
                    scale = int.from_bytes(data, "big")
                elif child == _DURATION and csize in (4, 8):
                    duration = struct.unpack(">f" if csize == 4 else ">d", data)[0]
            if duration is None:
                break
            return duration * scale / 1e9
    except (EOFError, ValueError, struct.error):
        raise _corrupt("webm") from None
    raise ProbeRejection(
        "The WebM file does not record its duration in its header (common for live browser "
        "recordings), so its length cannot be checked. Convert it to MP3 or M4A and upload that."
    )
