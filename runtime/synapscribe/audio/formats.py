"""The formats the platform accepts and the one sniffer that names them from their first bytes.

What each part accepts (the contract's decision, runtime/synapscribe/contract/): browsers record
WebM/Opus (Chrome, Firefox) or MP4 with AAC or Opus (Safari, Chrome); people upload MP3, M4A, WAV,
FLAC and Ogg. Every format below is accepted for question audio and for lectures: the edge reads a
lecture's duration from its header (or, for a live recording without one, from its last frames),
and AgentCore gives the model server MP3 or WAV (`ENGINE_FORMATS`: what the engine's soundfile
path decodes and what AgentCore measures and cuts exactly), converting every other format with
ffmpeg first. Anything else (text, images, empty or damaged files) is refused with
`unsupported_media` and a reason naming what the bytes are.
"""

from __future__ import annotations

from typing import Final

#: Format name (the values of platform.yaml's limits.accepted_content_types) -> how people call it.
LABELS: Final[dict[str, str]] = {
    "mp3": "MP3",
    "aac": "AAC",
    "m4a": "M4A",
    "wav": "WAV",
    "flac": "FLAC",
    "ogg": "OGG",
    "webm": "WebM",
}
#: The accepted formats, as a person reads them in an error message.
SUPPORTED: Final = "MP3, M4A, AAC, WAV, OGG, WebM or FLAC"
#: Formats AgentCore sends the model server as they are; the others it converts to MP3 first.
ENGINE_FORMATS: Final = ("wav", "mp3")


class MediaError(ValueError):
    """The bytes are not audio that can be read (the message says why)."""


def id3v2_size(data: bytes, pos: int = 0) -> int:
    """Bytes of the ID3v2 tag at `pos` (header, body and footer), or 0 when none starts there."""
    if data[pos : pos + 3] != b"ID3" or len(data) < pos + 10:
        return 0
    size = 0
    for b in data[pos + 6 : pos + 10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[pos + 5] & 0x10 else 0)


def _mpeg_sync(head: bytes) -> str | None:
    """MPEG audio (frame sync 0xFFE) or ADTS AAC (sync 0xFFF with layer bits 00)."""
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS: 12-bit sync, layer 00 (ISO 14496-3 1.A.2.2)
    if head[1] & 0x06:
        return "mp3"  # MPEG-1/2/2.5 layer I-III (layer 00 is reserved there)
    return None


def sniff(head: bytes) -> str | None:
    """The format a file's first bytes announce (a key of LABELS), or None when they are no audio
    we accept. 64 bytes are enough, or 64 past an ID3v2 tag: a tag followed by another format's
    bytes (when they are in `head`) names that format, since some tools tag ADTS and FLAC too."""
    tag = id3v2_size(head)
    if tag:
        return (sniff(head[tag : tag + 64]) if len(head) >= tag + 4 else None) or "mp3"
    mpeg = _mpeg_sync(head)
    if mpeg is not None:
        return mpeg
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "m4a"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


_MAGIC: Final = ((b"OggS", "ogg"), (b"fLaC", "flac"), (b"\x1a\x45\xdf\xa3", "webm"), (b"ADIF", "aac"))


def looks_like_mp3(data: bytes) -> bool:
    return sniff(data) == "mp3"


def describe_non_audio(head: bytes) -> str:
    """What bytes that `sniff` does not recognise are, for a person: "it is a text file"."""
    if not head.strip():
        return "it contains only blank bytes" if head else "it is empty"
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


def not_audio_reason(data: bytes) -> str:
    """The sentence that refuses bytes `sniff` does not recognise (from their first 512 bytes)."""
    return f"The file is not an audio recording ({describe_non_audio(data[:512])}). Upload it as {SUPPORTED}."
