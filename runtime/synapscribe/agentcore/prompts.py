"""The chat messages AgentCore sends to the model.

Order matters for prefix caching: system prompt, then the lecture (the same items, byte for byte,
every turn), then the history, then the question. Audio parts carry their duration under the
private key `_seconds`, and their decoded length under `_samples` and `_rate` where it is known
exactly, so the planner can count them; `wire_messages` strips private keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: How the model cites the lecture (agentcore/citations.py parses it): the ranges it was given.
CITATION_INSTRUCTION = (
    "After each sentence that uses the lecture, write the time range of the part or transcript "
    "line it comes from exactly as given, in the form [from 01:00-02:00]; it is not read aloud. "
    "Write no such range when the lecture does not cover the question."
)
SYSTEM_PROMPT = (
    "You are SynapScribe, a teaching assistant. A student asks questions about the lecture given "
    "below. Answer from the lecture, in plain spoken sentences (your answer is read aloud): no "
    "markdown, no lists, no headings. Be concise; mention the time in the lecture when it helps. "
    "If the lecture does not cover the question, say so. " + CITATION_INSTRUCTION
)
TRANSCRIBE_INSTRUCTION = (
    "Transcribe this audio exactly as spoken. Reply with the transcript only, nothing else."
)
VOICE_QUESTION_INSTRUCTION = "The student's question is in this audio. Answer it."
LECTURE_ACK = "I have the lecture and will answer from it."


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


# Items travel inside the request as base64 `input_audio`, not as file:// URLs under vLLM's
# --allowed-local-media-path. `synapscribe bench engine` measured both on the real engine: a follow-up
# re-sends ~270 KB per 100 s of lecture as base64 against ~1.3 KB of paths, but vLLM decodes the audio
# of either on every turn (its multimodal cache then serves both alike); its first token came after
# 215-487 ms with base64 and 229-356 ms with file:// over four runs on the CPU engine, a difference
# inside the run-to-run spread. AgentCore and vLLM share the host, so the bytes only cross loopback;
# file:// would add a directory both must share (segments come from S3), its cleanup, and a server
# flag that lets any request read files under it, for at most tens of milliseconds a turn.
# Since then a lecture item carries its uuid and goes by reference once vLLM holds it (media_refs.py):
# `bench engine` on the CPU engine, a 100 s lecture's follow-up: 1,178 bytes and first token 109 ms by
# uuid against 272,791 bytes and 179 ms as base64 data.
def audio_part(
    b64: str,
    fmt: str,
    seconds: float,
    samples: tuple[int, int] | None = None,
    uuid: str | None = None,
    by_reference: bool = False,
) -> dict[str, Any]:
    """An audio part; `samples` is its (decoded samples, sample rate) when known exactly, so the
    planner counts its tokens as the engine does (else it takes an upper bound from `seconds`).

    A lecture item carries its `uuid` in every request: vLLM then keys its caches (processor and
    prefix) by the uuid, and `by_reference` sends the uuid alone (`input_audio: null`), which
    vLLM accepts once it holds the item (agentcore/media_refs.py). An item sent with its data but
    no uuid is hashed by content instead, so the two forms are never mixed for one item."""
    spec: dict[str, str] | None = None if by_reference else {"data": b64, "format": fmt}
    part: dict[str, Any] = {"type": "input_audio", "input_audio": spec, "_seconds": seconds}
    if uuid is not None:
        part["uuid"] = uuid
    elif by_reference:
        raise ValueError("an audio part sent by reference needs its uuid")
    if samples is not None:
        part["_samples"], part["_rate"] = samples
    return part


@dataclass(frozen=True)
class LectureAudioItem:
    start: float
    end: float
    b64: str  # computed once per item so every request carries the identical bytes
    fmt: str
    #: (decoded samples, sample rate) when known exactly (AgentCore's MP3 items: media.mp3_samples)
    samples: tuple[int, int] | None = None
    #: the item's id at the model server (media_refs.item_uuid: lecture, index, digest of the bytes)
    uuid: str | None = None


@dataclass(frozen=True)
class TranscriptSegment:
    start: float
    end: float
    text: str


def lecture_audio_message(items: Sequence[LectureAudioItem], by_reference: bool = False) -> dict[str, Any]:
    """The lecture's items as one message; `by_reference` sends each item's uuid without its data
    (the same tokens, the same planner count: the private keys stay)."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": f"The lecture, as audio in {len(items)} consecutive parts."}
    ]
    for i, item in enumerate(items):
        content.append({"type": "text", "text": f"Part {i + 1} ({_clock(item.start)}-{_clock(item.end)}):"})
        content.append(
            audio_part(item.b64, item.fmt, item.end - item.start, item.samples, item.uuid, by_reference)
        )
    return {"role": "user", "content": content}


def lecture_transcript_message(segments: Sequence[TranscriptSegment]) -> dict[str, Any]:
    lines = [f"[{_clock(s.start)}-{_clock(s.end)}] {s.text}" for s in segments]
    return {
        "role": "user",
        "content": "The lecture, as a transcript with timestamps:\n" + "\n".join(lines),
    }


def lecture_messages(lecture: dict[str, Any]) -> list[dict[str, Any]]:
    """System prompt, lecture and acknowledgement: the fixed prefix of every request."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        lecture,
        {"role": "assistant", "content": LECTURE_ACK},
    ]


def turn_messages(turn: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": str(turn.get("question", ""))},
        {"role": "assistant", "content": str(turn.get("answer", ""))},
    ]


def history_messages(turns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [m for turn in turns for m in turn_messages(turn)]


def question_message(text: str | None = None, audio: tuple[str, str, float] | None = None) -> dict[str, Any]:
    """The question as text, or as audio (base64, format, seconds) with the instruction."""
    if audio is not None:
        b64, fmt, seconds = audio
        return {
            "role": "user",
            "content": [audio_part(b64, fmt, seconds), {"type": "text", "text": VOICE_QUESTION_INSTRUCTION}],
        }
    if text is None:
        raise ValueError("a question needs text or audio")
    return {"role": "user", "content": text}


def transcription_messages(b64: str, fmt: str, seconds: float) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [audio_part(b64, fmt, seconds), {"type": "text", "text": TRANSCRIBE_INSTRUCTION}],
        }
    ]


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def wire_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages as sent (private keys removed)."""
    return [_strip(dict(m)) for m in messages]
