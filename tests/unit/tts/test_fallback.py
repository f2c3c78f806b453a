"""Retries, backoff, 429 handling, timeouts and the circuit breaker, with fake engines and a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from synapscribe.tts.engines import EngineError, RateLimitedError
from synapscribe.tts.fallback import AllEnginesFailedError, EngineChain, EnginePolicy
from synapscribe.tts.voices import VOICES

EN = VOICES["en"]


class FakeEngine:
    """Plays a script: each call takes the next outcome (bytes or an exception); then repeats the last."""

    def __init__(self, name: str, *outcomes: bytes | Exception | Callable[[], bytes]) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls: list[str] = []

    def synthesize(self, text: str, voice: object) -> bytes:
        self.calls.append(text)
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            return outcome()
        return outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


GTTS_POLICY = EnginePolicy(timeout_seconds=2.0, retries=2, backoff_seconds=0.5, cooldown_seconds=60.0)
LOCAL_POLICY = EnginePolicy(timeout_seconds=2.0)


def chain(clock: Clock, *engines: tuple[FakeEngine, EnginePolicy]) -> EngineChain:
    return EngineChain(list(engines), clock=clock, sleep=clock.sleep)


async def test_first_engine_speaks_when_it_works() -> None:
    clock = Clock()
    gtts, local = FakeEngine("gtts", b"google"), FakeEngine("espeak-ng", b"local")
    c = chain(clock, (gtts, GTTS_POLICY), (local, LOCAL_POLICY))
    assert await c.speak("Hello.", EN) == (b"google", "gtts")
    assert local.calls == []
    assert clock.sleeps == []


async def test_errors_are_retried_with_exponential_backoff() -> None:
    clock = Clock()
    gtts = FakeEngine("gtts", EngineError("boom"), EngineError("boom"), b"google")
    c = chain(clock, (gtts, GTTS_POLICY), (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY))
    assert await c.speak("Hello.", EN) == (b"google", "gtts")
    assert len(gtts.calls) == 3
    assert clock.sleeps == [0.5, 1.0]
    assert c.status()[0]["open"] is False


async def test_429_waits_longer_and_honours_retry_after_up_to_the_cap() -> None:
    clock = Clock()
    gtts = FakeEngine("gtts", RateLimitedError("429"), RateLimitedError("429", retry_after=3.0), b"google")
    c = chain(clock, (gtts, GTTS_POLICY), (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY))
    assert await c.speak("Hello.", EN) == (b"google", "gtts")
    # plain backoff would be 0.5 then 1.0; after a 429 it doubles, and Retry-After wins when longer
    assert clock.sleeps == [1.0, 3.0]
    capped = EnginePolicy(timeout_seconds=1, retries=1, backoff_seconds=0.5, max_backoff_seconds=4.0)
    assert capped.backoff(1, RateLimitedError("429", retry_after=600)) == 4.0


async def test_exhausted_retries_fall_back_and_open_the_breaker() -> None:
    clock = Clock()
    gtts = FakeEngine("gtts", EngineError("Failed to connect"))
    local = FakeEngine("espeak-ng", b"local")
    c = chain(clock, (gtts, GTTS_POLICY), (local, LOCAL_POLICY))

    assert await c.speak("One.", EN) == (b"local", "espeak-ng")
    assert len(gtts.calls) == 3  # one attempt and two retries
    status = c.status()[0]
    assert status["open"] is True and status["failures"] == 1
    assert "Failed to connect" in str(status["lastError"])

    # While the breaker is open, gTTS is not even called: no sentence pays its timeout.
    clock.now += 30
    assert await c.speak("Two.", EN) == (b"local", "espeak-ng")
    assert len(gtts.calls) == 3

    # After the cool-down a single probe (no retries) decides; it fails, so the breaker opens again.
    clock.now += 31
    sleeps_before = len(clock.sleeps)
    assert await c.speak("Three.", EN) == (b"local", "espeak-ng")
    assert len(gtts.calls) == 4
    assert len(clock.sleeps) == sleeps_before
    assert c.status()[0]["open"] is True


async def test_breaker_closes_when_the_probe_succeeds() -> None:
    clock = Clock()
    gtts = FakeEngine("gtts", EngineError("down"), EngineError("down"), EngineError("down"), b"google")
    c = chain(clock, (gtts, GTTS_POLICY), (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY))
    assert (await c.speak("One.", EN))[1] == "espeak-ng"
    clock.now += 61
    assert await c.speak("Two.", EN) == (b"google", "gtts")
    assert c.status()[0]["open"] is False
    # and the next failure gets full retries again
    assert c.states[0].consecutive_failures == 0


async def test_retry_after_longer_than_cooldown_keeps_the_breaker_open_longer() -> None:
    clock = Clock()
    gtts = FakeEngine("gtts", RateLimitedError("429", retry_after=300))
    c = chain(clock, (gtts, GTTS_POLICY), (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY))
    await c.speak("One.", EN)
    clock.now += 100  # past the 60 s cool-down, not past Retry-After
    await c.speak("Two.", EN)
    assert len(gtts.calls) == 3


async def test_a_hanging_engine_is_cut_off_by_the_timeout() -> None:
    release = threading.Event()

    def hang() -> bytes:
        release.wait(5)
        return b"too late"

    clock = Clock()
    gtts = FakeEngine("gtts", hang)
    policy = EnginePolicy(timeout_seconds=0.2, retries=0, cooldown_seconds=60)
    c = EngineChain([(gtts, policy), (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY)], clock=clock)
    started = time.monotonic()
    try:
        assert await c.speak("Hello.", EN) == (b"local", "espeak-ng")
    finally:
        release.set()
        c.close()
    assert time.monotonic() - started < 2.0
    assert "no answer within 0.2 s" in str(c.status()[0]["lastError"])


def test_the_attempt_timeout_grows_with_gtts_pieces() -> None:
    policy = EnginePolicy(timeout_seconds=5, timeout_per_chars=100)
    assert policy.attempt_timeout("x" * 100) == 5
    assert policy.attempt_timeout("x" * 101) == 10
    assert policy.attempt_timeout("x" * 4096) == 30  # capped: a long text cannot hold a request for minutes
    assert EnginePolicy(timeout_seconds=5).attempt_timeout("x" * 1000) == 5


async def test_the_last_engine_is_tried_even_with_its_breaker_open() -> None:
    clock = Clock()
    only = FakeEngine("espeak-ng", EngineError("disk full"), b"local")
    c = chain(clock, (only, EnginePolicy(timeout_seconds=1, cooldown_seconds=60)))
    with pytest.raises(AllEnginesFailedError, match="disk full"):
        await c.speak("One.", EN)
    assert c.status()[0]["open"] is True
    assert await c.speak("Two.", EN) == (b"local", "espeak-ng")


async def test_all_engines_failing_names_each_error() -> None:
    clock = Clock()
    c = chain(
        clock,
        (FakeEngine("gtts", EngineError("no route to Google")), GTTS_POLICY),
        (FakeEngine("espeak-ng", RuntimeError("segfault in a bug")), LOCAL_POLICY),
    )
    with pytest.raises(AllEnginesFailedError) as info:
        await c.speak("Hello.", EN)
    message = str(info.value)
    assert "gtts: no route to Google" in message
    assert "RuntimeError: segfault in a bug" in message
    assert [name for name, _ in info.value.errors] == ["gtts", "espeak-ng"]


async def test_empty_audio_counts_as_a_failure() -> None:
    clock = Clock()
    c = chain(
        clock,
        (FakeEngine("gtts", b""), EnginePolicy(timeout_seconds=1, retries=0)),
        (FakeEngine("espeak-ng", b"local"), LOCAL_POLICY),
    )
    assert await c.speak("Hello.", EN) == (b"local", "espeak-ng")
    assert c.status()[0]["lastError"] == "gtts: empty audio"


def test_a_chain_needs_an_engine() -> None:
    with pytest.raises(ValueError, match="at least one engine"):
        EngineChain([])
