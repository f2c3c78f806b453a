"""Deterministic token counting for the stand-in (no tokenizer, no weights).

Text, shaped like Qwen's byte-level BPE where it costs most: every ASCII digit is its own token (Qwen
splits numbers into single digits); every non-ASCII character is at least one token, and a rare
one is pessimistically charged its UTF-8 length less one (CJK: 2, emoji: 3); any other ASCII run
costs one token per started group of 4 characters, the usual rule of thumb for English. No text
ever costs more tokens than its UTF-8 bytes, as with any byte-level BPE. Token ids are CRCs of their
pieces, so equal text gives equal ids and the prefix cache sees the same blocks.

Chat template (Qwen's ChatML): every message costs `<|im_start|>`, its role, a newline, its content,
`<|im_end|>` and a newline; the generation prompt adds `<|im_start|>assistant\\n`.

Audio: counted as vLLM counts Qwen2.5-Omni's audio, by synapscribe.audio_tokens (the planner's
rule too) from the decoded samples; they sit between `<|audio_bos|>` and `<|audio_eos|>`. Samples
come from the `wave` module for WAV and from mutagen's duration and sample rate for everything else
(MP3, and whatever else mutagen reads).
"""

from __future__ import annotations

import hashlib
import io
import re
import wave
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import mutagen

CHARS_PER_TOKEN = 4
#: Text ids stay below the special ids, as in Qwen's vocabulary.
TEXT_VOCAB = 151_643
IM_START = 151_644
IM_END = 151_645
AUDIO_PAD = 151_646
AUDIO_BOS = 151_647
AUDIO_EOS = 151_648


class AudioDecodeError(ValueError):
    """The bytes of an audio item cannot be read as audio."""


_PIECE = re.compile(rf"[0-9]|[^\x00-\x7f]|[^0-9\x80-\U0010ffff]{{1,{CHARS_PER_TOKEN}}}")


def split_text(text: str) -> list[str]:
    """The text in the stand-in's pieces (a digit, a non-ASCII character, or up to CHARS_PER_TOKEN
    other ASCII characters); they join back to the text. See piece_tokens for what each costs."""
    return _PIECE.findall(text)


def piece_tokens(piece: str) -> int:
    if len(piece) == 1 and not piece.isascii():
        return max(1, len(piece.encode("utf-8")) - 1)
    return 1


def count_text_tokens(text: str) -> int:
    return sum(piece_tokens(piece) for piece in split_text(text))


def text_token_ids(text: str) -> list[int]:
    ids: list[int] = []
    for piece in split_text(text):
        base = zlib.crc32(piece.encode("utf-8"))
        ids.extend((base + k) % TEXT_VOCAB for k in range(piece_tokens(piece)))
    return ids


def audio_samples(data: bytes, fmt: str) -> tuple[int, int]:
    """Decoded length of an audio item: (samples per channel, sample rate). `fmt` is the declared
    format ("wav", "mp3", …)."""
    if not data:
        raise AudioDecodeError("audio item is empty")
    if fmt == "wav" or data[:4] == b"RIFF":
        try:
            with wave.open(io.BytesIO(data), "rb") as reader:
                rate = reader.getframerate()
                if rate <= 0:
                    raise AudioDecodeError("WAV audio has a zero sample rate")
                return reader.getnframes(), rate
        except (wave.Error, EOFError) as exc:
            if fmt == "wav":
                raise AudioDecodeError(f"cannot read WAV audio: {exc}") from None
    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception as exc:  # mutagen raises many unrelated types for garbage input
        raise AudioDecodeError(f"cannot read {fmt} audio: {exc}") from None
    info = getattr(parsed, "info", None)
    length = getattr(info, "length", None)
    sample_rate = getattr(info, "sample_rate", None)
    if parsed is None or not length or length <= 0 or not sample_rate or sample_rate <= 0:
        raise AudioDecodeError(f"cannot read {fmt} audio: no audio stream found")
    return round(float(length) * sample_rate), int(sample_rate)


def audio_duration_seconds(data: bytes, fmt: str) -> float:
    """Decoded duration of an audio item. `fmt` is the declared format ("wav", "mp3", …)."""
    samples, rate = audio_samples(data, fmt)
    return samples / rate


@dataclass(frozen=True)
class AudioItem:
    data: bytes
    fmt: str
    duration_seconds: float
    num_tokens: int
    #: the part's `uuid`: vLLM then keys its caches by it instead of the content hash
    uuid: str | None = None

    @cached_property
    def digest(self) -> str:
        """The item's multimodal hash as vLLM's caches key it: its uuid when it has one."""
        if self.uuid is not None:
            return f"uuid:{self.uuid}"
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Prompt:
    """A rendered prompt: token ids, and where each audio item's placeholder tokens sit."""

    token_ids: list[int] = field(default_factory=list)
    #: (start index of the first placeholder token, the item)
    audio: list[tuple[int, AudioItem]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.token_ids)

    def add_text(self, text: str) -> None:
        self.token_ids.extend(text_token_ids(text))

    def add_audio(self, item: AudioItem) -> None:
        self.token_ids.append(AUDIO_BOS)
        self.audio.append((len(self.token_ids), item))
        self.token_ids.extend([AUDIO_PAD] * item.num_tokens)
        self.token_ids.append(AUDIO_EOS)

    def start_message(self, role: str) -> None:
        self.token_ids.append(IM_START)
        self.add_text(role + "\n")

    def end_message(self) -> None:
        self.token_ids.append(IM_END)
        self.add_text("\n")
