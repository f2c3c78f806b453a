"""What generated test speech says, read from its metadata (the stand-in cannot listen).

`synapscribe_local.audiogen.embedded_text` owns that format (ID3 `TXXX:synapscribe-text` in MP3, a
LIST/INFO comment in WAV). Audio tagged by other tools with the same ID3 frame (mutagen also
writes ID3 into a WAV's `id3 ` chunk) is read here as a fallback.
"""

from __future__ import annotations

import io

import mutagen

from synapscribe_local.audiogen import embedded_text as audiogen_embedded_text

TEXT_FRAME = "TXXX:synapscribe-text"


def _id3_text(data: bytes) -> str | None:
    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception:  # garbage in: no text, the caller answers "inaudible"
        return None
    tags = getattr(parsed, "tags", None)
    if tags is None or not hasattr(tags, "getall"):
        return None
    frames = tags.getall(TEXT_FRAME)
    text = " ".join(str(t) for frame in frames for t in frame.text).strip()
    return text or None


def embedded_text(data: bytes) -> str | None:
    """The words embedded in generated audio, or None (real recordings, garbage)."""
    try:
        text = audiogen_embedded_text(data)
    except Exception:  # a malformed file must read as "no text", never crash a request
        text = None
    if not text:
        text = _id3_text(data)
    return text.strip() or None if text else None
