"""Cutting a streamed answer into sentences as they complete, for speech."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…]+[\"')\]»”’]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "prof", "vs", "fig", "eq", "no", "approx", "st", "cf"}
)
#: A sentence shorter than this is joined with the next (fewer, more natural TTS calls).
MIN_CHARS = 12
#: A run-on without an end mark is cut at a comma or space once it grows this long.
MAX_CHARS = 280


class SentenceSplitter:
    def __init__(self, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> None:
        self._buffer = ""
        self._min = min_chars
        self._max = max_chars

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the sentences it completed."""
        self._buffer += text
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end()
            candidate = self._buffer[start:end].strip()
            word = candidate.rsplit(None, 1)[-1].rstrip(".").lower() if candidate else ""
            if word in _ABBREVIATIONS:
                continue
            if len(candidate) < self._min:
                continue
            out.append(candidate)
            start = end
        self._buffer = self._buffer[start:]
        while len(self._buffer) > self._max:
            cut = max(self._buffer.rfind(", ", 0, self._max), self._buffer.rfind(" ", 0, self._max))
            if cut <= 0:
                cut = self._max
            out.append(self._buffer[: cut + 1].strip())
            self._buffer = self._buffer[cut + 1 :]
        return [s for s in out if s]

    def flush(self) -> str | None:
        """The rest of the answer once the stream ended."""
        rest = self._buffer.strip()
        self._buffer = ""
        return rest or None
