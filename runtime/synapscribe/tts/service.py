"""Speech with the cache in front of the engine chain: one synthesis per (text, voice) at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from synapscribe.tts.cache import CachedSpeech, SpeechCache, cache_key
from synapscribe.tts.engines import Engine, EspeakEngine, GttsEngine
from synapscribe.tts.fallback import EngineChain, EnginePolicy
from synapscribe.tts.settings import TtsSettings
from synapscribe.tts.voices import Voice


@dataclass(frozen=True)
class Speech:
    audio: bytes
    engine: str
    cache_hit: bool


def build_engines(settings: TtsSettings) -> list[tuple[Engine, EnginePolicy]]:
    """The configured engines with their policies; EngineUnavailableError if a tool is missing."""
    engines: list[tuple[Engine, EnginePolicy]] = []
    for name in settings.engines:
        if name == "gtts":
            engines.append(
                (
                    GttsEngine(timeout_seconds=settings.gtts_timeout_seconds, tld=settings.gtts_tld),
                    EnginePolicy(
                        timeout_seconds=settings.gtts_timeout_seconds,
                        retries=settings.gtts_retries,
                        backoff_seconds=settings.gtts_backoff_seconds,
                        cooldown_seconds=settings.gtts_cooldown_seconds,
                        timeout_per_chars=100,
                        deadline_seconds=settings.gtts_deadline_seconds,
                    ),
                )
            )
        else:
            espeak = EspeakEngine(
                timeout_seconds=settings.espeak_timeout_seconds, bitrate_kbps=settings.mp3_bitrate_kbps
            )
            espeak.check()
            engines.append((espeak, EnginePolicy(timeout_seconds=settings.espeak_timeout_seconds, workers=4)))
    return engines


class SpeechService:
    def __init__(
        self,
        chain: EngineChain,
        cache: SpeechCache,
        *,
        simulated_latency_seconds: float = 0.0,
    ) -> None:
        self.chain = chain
        self.cache = cache
        self.simulated_latency_seconds = simulated_latency_seconds
        self._in_flight: dict[str, asyncio.Future[tuple[bytes, str]]] = {}

    @classmethod
    def from_settings(
        cls, settings: TtsSettings, engines: Sequence[tuple[Engine, EnginePolicy]] | None = None
    ) -> SpeechService:
        chain = EngineChain(list(engines) if engines is not None else build_engines(settings))
        return cls(
            chain,
            SpeechCache(settings.cache_max_bytes),
            simulated_latency_seconds=settings.simulated_latency_ms / 1000,
        )

    async def speak(self, text: str, voice: Voice) -> Speech:
        if self.simulated_latency_seconds:
            await asyncio.sleep(self.simulated_latency_seconds)
        cached = self.cache.get(text, voice.name)
        if cached is not None:
            return Speech(cached.audio, cached.engine, True)
        key = cache_key(text, voice.name)
        pending = self._in_flight.get(key)
        if pending is not None:
            # The same sentence is being spoken for another request: share its result.
            audio, engine = await asyncio.shield(pending)
            return Speech(audio, engine, True)
        future: asyncio.Future[tuple[bytes, str]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            audio, engine = await self.chain.speak(text, voice)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result((audio, engine))
            self.cache.put(text, voice.name, CachedSpeech(audio, engine))
            return Speech(audio, engine, False)
        finally:
            self._in_flight.pop(key, None)

    def close(self) -> None:
        self.chain.close()
