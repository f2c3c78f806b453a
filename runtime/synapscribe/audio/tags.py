"""The words generated speech carries inside the file (see synapscribe_local.audiogen's docstring):
ID3v2 `TXXX` frames in MP3, a `LIST`/`INFO` chunk in WAV. Written by the generator and by
AgentCore's cutting (each item keeps its share of the timeline), read by the model stand-in."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from typing import NamedTuple

from mutagen import MutagenError
from mutagen.id3 import ID3, TXXX

TEXT_TAG = "synapscribe-text"
TIMELINE_TAG = "synapscribe-timeline"
_WAV_TEXT_PREFIX = TEXT_TAG + ":"


class Cue(NamedTuple):
    start: float
    end: float
    text: str


def timeline_json(timeline: Sequence[Cue]) -> str:
    return json.dumps([[round(c.start, 3), round(c.end, 3), c.text] for c in timeline], ensure_ascii=False)


def id3_tag(text: str, timeline: Sequence[Cue]) -> bytes:
    """An ID3v2.4 tag holding the text and the timeline, to put in front of MP3 frames."""
    tags = ID3()
    tags.add(TXXX(encoding=3, desc=TEXT_TAG, text=[text]))
    tags.add(TXXX(encoding=3, desc=TIMELINE_TAG, text=[timeline_json(timeline)]))
    buf = io.BytesIO()
    tags.save(buf, v2_version=4, padding=lambda _info: 0)
    return buf.getvalue()


def tag_mp3(frames: bytes, cues: Sequence[Cue]) -> bytes:
    """MP3 frames led by the tag of what `cues` say (their texts joined are the text)."""
    return id3_tag(" ".join(c.text for c in cues), cues) + frames


def _info_subchunk(chunk_id: bytes, value: str) -> bytes:
    raw = value.encode("utf-8") + b"\0"
    return chunk_id + struct.pack("<I", len(raw)) + raw + (b"\0" if len(raw) % 2 else b"")


def tag_wav(wav_bytes: bytes, text: str, timeline: Sequence[Cue]) -> bytes:
    """Append a LIST/INFO chunk (ICMT: the text; ITLN: the timeline) and fix the RIFF size."""
    info = b"INFO" + _info_subchunk(b"ICMT", _WAV_TEXT_PREFIX + text)
    info += _info_subchunk(b"ITLN", timeline_json(timeline))
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
    """The words generated audio speaks, or None for other audio."""
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
