"""The speech cache: MP3 bytes by (text, voice), whichever engine spoke them, bounded in bytes (LRU)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedSpeech:
    audio: bytes
    engine: str


def cache_key(text: str, voice: str) -> str:
    return hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()


class SpeechCache:
    """Least recently used entries are evicted once the total audio exceeds `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedSpeech] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, text: str, voice: str) -> CachedSpeech | None:
        key = cache_key(text, voice)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, text: str, voice: str, entry: CachedSpeech) -> None:
        size = len(entry.audio)
        if size > self.max_bytes:
            return  # would evict everything and still not fit
        key = cache_key(text, voice)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.audio)
            self._entries[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.audio)
