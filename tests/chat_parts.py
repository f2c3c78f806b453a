"""Audio for chat requests in tests: exact-length WAVs (optionally carrying their text, as
generated speech does) and the OpenAI `input_audio` part that carries one."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

from mutagen.id3 import TXXX
from mutagen.wave import WAVE


def make_wav(seconds: float, rate: int = 8000, seed: int = 0, text: str | None = None) -> bytes:
    """Mono 8-bit WAV of an exact duration; `seed` changes the bytes, `text` embeds an ID3 text."""
    frames = round(seconds * rate)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes((128 + seed + i % 7) % 256 for i in range(frames)))
    data = buf.getvalue()
    if text is None:
        return data
    tagged = io.BytesIO(data)
    wav = WAVE(tagged)
    wav.add_tags()
    assert wav.tags is not None
    wav.tags.add(TXXX(encoding=3, desc="synapscribe-text", text=[text]))
    wav.save(tagged)
    return tagged.getvalue()


def audio_part(data: bytes, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}
