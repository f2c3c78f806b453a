"""A request's gTTS attempts end by the service's deadline, so a hanging Google still gets speech
from the offline engine long before AgentCore's TTS client gives up."""

from __future__ import annotations

import threading
import time

import pytest
from synapscribe.platform import load_platform
from synapscribe.tts.cache import SpeechCache
from synapscribe.tts.engines import EngineError
from synapscribe.tts.fallback import EngineChain, EnginePolicy
from synapscribe.tts.service import SpeechService, build_engines
from synapscribe.tts.settings import TtsSettings
from synapscribe.tts.voices import VOICES

EN = VOICES["en"]


class HangingGtts:
    """gTTS when Google accepts the connection and never answers (until released)."""

    name = "gtts"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def synthesize(self, text: str, voice: object) -> bytes:
        self.calls += 1
        self.release.wait(10)
        return b"too late"


class Offline:
    name = "espeak-ng"

    def synthesize(self, text: str, voice: object) -> bytes:
        return b"offline:" + text.encode()


# The production gTTS policy shape: 5 s per attempt, 2 retries with backoff (3 x 5 s + 1.5 s).
def gtts_policy(deadline: float | None) -> EnginePolicy:
    return EnginePolicy(
        timeout_seconds=5.0, retries=2, backoff_seconds=0.5, cooldown_seconds=60, deadline_seconds=deadline
    )


async def test_hanging_gtts_falls_back_within_the_deadline() -> None:
    gtts = HangingGtts()
    service = SpeechService(
        EngineChain([(gtts, gtts_policy(0.4)), (Offline(), EnginePolicy(timeout_seconds=5.0))]),
        cache=SpeechCache(0),
    )
    started = time.monotonic()
    try:
        speech = await service.speak("Hello there.", EN)
    finally:
        gtts.release.set()
        service.close()
    elapsed = time.monotonic() - started
    assert speech.engine == "espeak-ng" and speech.audio == b"offline:Hello there."
    assert elapsed < 2.0  # without the deadline: 5 s for the first attempt alone
    assert gtts.calls == 1  # no retry fits in what is left of the deadline
    assert "deadline" in str(service.chain.status()[0]["lastError"])


async def test_retries_that_fit_the_deadline_still_happen() -> None:
    calls: list[float] = []

    class Flaky:
        name = "gtts"

        def synthesize(self, text: str, voice: object) -> bytes:
            calls.append(time.monotonic())
            if len(calls) < 3:
                raise EngineError("gTTS: 500")
            return b"google"

    policy = EnginePolicy(timeout_seconds=5.0, retries=2, backoff_seconds=0.05, deadline_seconds=2.0)
    chain = EngineChain([(Flaky(), policy), (Offline(), EnginePolicy(timeout_seconds=5.0))])
    try:
        assert await chain.speak("Hi.", EN) == (b"google", "gtts")
    finally:
        chain.close()
    assert len(calls) == 3


def test_the_service_deadline_is_a_setting_well_under_agentcores_tts_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = TtsSettings(engines=("gtts",))
    assert default.gtts_deadline_seconds <= load_platform().agentcore.upstream_timeout_seconds / 2
    [(_engine, policy)] = build_engines(default)
    assert policy.deadline_seconds == default.gtts_deadline_seconds
    monkeypatch.setenv("SYNAPSCRIBE_TTS_GTTS_DEADLINE_SECONDS", "1.5")
    [(_engine, policy)] = build_engines(TtsSettings(engines=("gtts",)))
    assert policy.deadline_seconds == 1.5
    monkeypatch.setenv("SYNAPSCRIBE_TTS_GTTS_DEADLINE_SECONDS", "0")
    with pytest.raises(ValueError, match="gtts_deadline_seconds"):
        TtsSettings()
