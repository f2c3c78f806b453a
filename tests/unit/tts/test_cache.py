"""The speech cache: keyed by text and voice (not engine), bounded in bytes, least recently used out."""

from __future__ import annotations

import pytest
from synapscribe.tts.cache import CachedSpeech, SpeechCache


def entry(size: int, engine: str = "espeak-ng") -> CachedSpeech:
    return CachedSpeech(b"x" * size, engine)


def test_hit_returns_the_audio_and_the_engine_that_spoke_it() -> None:
    cache = SpeechCache(1000)
    assert cache.get("Hello.", "en") is None
    cache.put("Hello.", "en", entry(10, "gtts"))
    got = cache.get("Hello.", "en")
    assert got is not None and got.engine == "gtts" and got.audio == b"x" * 10
    assert (cache.hits, cache.misses) == (1, 1)


def test_voice_is_part_of_the_key() -> None:
    cache = SpeechCache(1000)
    cache.put("Bonjour.", "fr", entry(10))
    assert cache.get("Bonjour.", "en") is None
    assert cache.get("Bonjour.", "fr") is not None


def test_least_recently_used_is_evicted_by_bytes() -> None:
    cache = SpeechCache(100)
    cache.put("a", "en", entry(40))
    cache.put("b", "en", entry(40))
    assert cache.get("a", "en") is not None  # a is now the most recently used
    cache.put("c", "en", entry(40))
    assert cache.get("b", "en") is None
    assert cache.get("a", "en") is not None and cache.get("c", "en") is not None
    assert cache.size_bytes == 80 and len(cache) == 2


def test_replacing_an_entry_recounts_its_bytes() -> None:
    cache = SpeechCache(100)
    cache.put("a", "en", entry(60))
    cache.put("a", "en", entry(30))
    assert cache.size_bytes == 30 and len(cache) == 1


def test_an_entry_larger_than_the_cache_is_not_stored_and_evicts_nothing() -> None:
    cache = SpeechCache(100)
    cache.put("a", "en", entry(50))
    cache.put("huge", "en", entry(101))
    assert cache.get("huge", "en") is None
    assert cache.get("a", "en") is not None


def test_zero_bytes_turns_the_cache_off() -> None:
    cache = SpeechCache(0)
    cache.put("a", "en", entry(1))
    assert cache.get("a", "en") is None and len(cache) == 0


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SpeechCache(-1)
