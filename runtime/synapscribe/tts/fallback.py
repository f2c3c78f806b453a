"""Engines in order, each with a timeout per attempt, retries with backoff, and a circuit breaker.

An engine that fails (all its attempts) is skipped for its cool-down, so while Google is
unreachable each sentence goes straight to the offline engine instead of paying gTTS's timeout
again. After the cool-down one probe attempt (no retries) decides whether it is back. The last
engine in the chain is always tried, open or not: a request never fails only because of breakers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from synapscribe.tts.engines import Engine, EngineError, RateLimitedError
from synapscribe.tts.voices import Voice


@dataclass(frozen=True)
class EnginePolicy:
    timeout_seconds: float
    retries: int = 0
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    cooldown_seconds: float = 0.0
    #: gTTS sends one HTTP request per 100 characters: the attempt timeout grows with the text.
    timeout_per_chars: int | None = None
    max_timeout_seconds: float = 30.0
    workers: int = 8
    #: All of this engine's attempts for one request (timeouts and backoff together) end this long
    #: after the first began; then the next engine speaks. None: only the per-attempt timeout.
    deadline_seconds: float | None = None

    def attempt_timeout(self, text: str) -> float:
        if self.timeout_per_chars is None:
            return self.timeout_seconds
        pieces = max(1, math.ceil(len(text) / self.timeout_per_chars))
        return max(self.timeout_seconds, min(self.timeout_seconds * pieces, self.max_timeout_seconds))

    def backoff(self, attempt: int, last: EngineError | None) -> float:
        """Delay before retry number `attempt` (1-based): exponential, longer after a 429."""
        delay = self.backoff_seconds * 2 ** (attempt - 1)
        if isinstance(last, RateLimitedError):
            delay = max(delay * 2, last.retry_after or 0.0)
        return float(min(delay, self.max_backoff_seconds))


@dataclass
class EngineState:
    engine: Engine
    policy: EnginePolicy
    executor: ThreadPoolExecutor
    open_until: float = 0.0
    consecutive_failures: int = 0
    successes: int = 0
    failures: int = 0
    attempts: int = 0
    last_error: str | None = None

    def is_open(self, now: float) -> bool:
        return now < self.open_until


class AllEnginesFailedError(RuntimeError):
    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        detail = "; ".join(f"{name}: {err}" for name, err in errors) or "no engine was tried"
        super().__init__(f"no engine could speak: {detail}")


@dataclass
class EngineChain:
    engines: Sequence[tuple[Engine, EnginePolicy]]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    states: list[EngineState] = field(init=False)

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("an engine chain needs at least one engine")
        self.states = [
            EngineState(e, p, ThreadPoolExecutor(max_workers=p.workers, thread_name_prefix=f"tts-{e.name}"))
            for e, p in self.engines
        ]

    @property
    def names(self) -> list[str]:
        return [s.engine.name for s in self.states]

    def close(self) -> None:
        for s in self.states:
            s.executor.shutdown(wait=False, cancel_futures=True)

    async def speak(self, text: str, voice: Voice) -> tuple[bytes, str]:
        """MP3 bytes and the name of the engine that spoke them; AllEnginesFailedError otherwise."""
        errors: list[tuple[str, str]] = []
        for index, state in enumerate(self.states):
            is_last = index == len(self.states) - 1
            if state.is_open(self.clock()) and not is_last:
                errors.append((state.engine.name, f"skipped (cooling down after: {state.last_error})"))
                continue
            try:
                audio = await self._attempts(state, text, voice, is_last)
            except EngineError as exc:
                errors.append((state.engine.name, str(exc)))
                continue
            return audio, state.engine.name
        raise AllEnginesFailedError(errors)

    async def _attempts(self, state: EngineState, text: str, voice: Voice, is_last: bool) -> bytes:
        policy = state.policy
        # A probe after the cool-down gets one attempt: it only asks whether the engine is back.
        retries = 0 if state.consecutive_failures else policy.retries
        timeout = policy.attempt_timeout(text)
        deadline = None if policy.deadline_seconds is None else self.clock() + policy.deadline_seconds
        last: EngineError | None = None
        loop = asyncio.get_running_loop()
        for attempt in range(retries + 1):
            if attempt:
                if state.is_open(self.clock()) and not is_last:
                    break  # another request tripped the breaker meanwhile: stop paying for this engine
                delay = policy.backoff(attempt, last)
                if deadline is not None and self.clock() + delay >= deadline:
                    break  # no time left for another attempt within this request's deadline
                await self.sleep(delay)
            this_timeout = timeout if deadline is None else min(timeout, deadline - self.clock())
            state.attempts += 1
            try:
                future = loop.run_in_executor(state.executor, state.engine.synthesize, text, voice)
                audio = await asyncio.wait_for(future, this_timeout)
            except TimeoutError:
                within = (
                    f"{timeout:g} s"
                    if this_timeout == timeout
                    else f"the request's {policy.deadline_seconds:g} s deadline"
                )
                last = EngineError(f"{state.engine.name}: no answer within {within}")
            except EngineError as exc:
                last = exc
            except Exception as exc:  # an engine bug must not take the request down with it
                last = EngineError(f"{state.engine.name}: {type(exc).__name__}: {exc}")
            else:
                if not audio:
                    last = EngineError(f"{state.engine.name}: empty audio")
                    continue
                state.successes += 1
                state.consecutive_failures = 0
                state.open_until = 0.0
                return audio
        assert last is not None
        state.failures += 1
        state.consecutive_failures += 1
        state.last_error = str(last)
        cooldown = policy.cooldown_seconds
        if isinstance(last, RateLimitedError) and last.retry_after:
            cooldown = max(cooldown, last.retry_after)
        if cooldown > 0:
            state.open_until = max(state.open_until, self.clock() + cooldown)
        raise last

    def status(self) -> list[dict[str, object]]:
        now = self.clock()
        return [
            {
                "engine": s.engine.name,
                "open": s.is_open(now),
                "retryInSeconds": round(max(0.0, s.open_until - now), 1),
                "successes": s.successes,
                "failures": s.failures,
                "attempts": s.attempts,
                "lastError": s.last_error,
            }
            for s in self.states
        ]
