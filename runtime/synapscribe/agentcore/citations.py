"""Where in the lecture an answer comes from.

The system prompt (prompts.CITATION_INSTRUCTION) asks the model to end each passage it used with
the time range the lecture message gave it, as `[from 01:00-02:00]`: a part's times in audio
mode, a segment's in transcript mode (prompts.lecture_*_message label both so). `parse` reads
those markers back into seconds, keeping only ranges inside the lecture; `unspoken` removes them
from what is read aloud, and the page shows them as timestamps.
"""

from __future__ import annotations

import re

from synapscribe.contract import Citation

_CLOCK = r"(?:\d{1,2}:)?\d{1,2}:\d{2}"
#: `[from 01:00-02:00]` (an en dash or "to" is accepted as the separator too).
MARKER_RE = re.compile(rf"\s*\[from ({_CLOCK})\s*(?:-|–|to)\s*({_CLOCK})\]", re.IGNORECASE)
#: At most this many citations per answer (a model that loops cannot make the message grow).
MAX_CITATIONS = 8


def seconds(clock: str) -> int:
    value = 0
    for piece in clock.split(":"):
        value = value * 60 + int(piece)
    return value


def parse(text: str, duration: float | None) -> list[Citation]:
    """The answer's cited ranges in order, each once, inside [0, duration] (when known)."""
    limit = float(duration) if duration is not None else None  # a DynamoDB Decimal, or None
    found: list[Citation] = []
    for match in MARKER_RE.finditer(text):
        start, end = float(seconds(match.group(1))), float(seconds(match.group(2)))
        if end <= start or (limit is not None and start >= limit):
            continue
        if limit is not None:
            end = min(end, limit)
        citation = Citation(startSeconds=start, endSeconds=end)
        if citation not in found:
            found.append(citation)
        if len(found) == MAX_CITATIONS:
            break
    return found


def unspoken(sentence: str) -> str:
    """The sentence as it is read aloud: without citation markers."""
    return MARKER_RE.sub("", sentence).strip()


def stored(cited: list[Citation]) -> list[list[float]]:
    """The citations as a session's history keeps them: `[start, end]` pairs (at most
    MAX_CITATIONS, so a few dozen bytes a turn; edge/history.py reads them back)."""
    return [[c.startSeconds, c.endSeconds] for c in cited[:MAX_CITATIONS]]
