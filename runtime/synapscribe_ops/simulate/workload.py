"""A day of students: sessions by hour, questions per session, lectures, voice or text.

Service times are the original report's latencies, the figures `synapscribe bench pipeline`
runs the stand-in at (synapscribe_local.standin.config.REPORT_LATENCY): a transcription takes 1.8 s;
an answer takes its first token (0.4 s) plus ~170 tokens at 40 tokens/s. These are inputs, not
measurements of this simulator: pass others with the flags. A slot's decode rate is taken as
independent of how many slots are busy (vLLM batches them; a GPU measurement may say otherwise).
The first question of a session also pays the lecture's prefill (its transcript-mode tokens at
`prefill_tokens_per_second`); later questions find it in vLLM's prefix cache.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from synapscribe.agentcore.admission import ANSWER, TRANSCRIBE
from synapscribe_local.standin.config import REPORT_LATENCY

from synapscribe_ops.simulate.engine import Question

#: Share of a day's sessions that start in each hour (0-23): a university's day with a lunch dip
#: and an evening study peak. Normalised when used.
DEFAULT_PROFILE: tuple[float, ...] = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4.0, 7.0, 9.0, 9.0,
    6.0, 7.0, 9.0, 9.0, 7.0, 5.0, 4.0, 5.0, 5.0, 4.0, 2.0, 1.0,
)  # fmt: skip


@dataclass(frozen=True)
class Workload:
    sessions_per_day: int
    questions_per_session: float = 4.0
    #: mean seconds between a student's questions
    think_seconds: float = 90.0
    voice_share: float = 0.6
    lecture_minutes_mean: float = 45.0
    transcription_seconds: float = REPORT_LATENCY.transcription_seconds
    first_token_seconds: float = REPORT_LATENCY.first_token_seconds
    tokens_per_second: float = REPORT_LATENCY.tokens_per_second
    answer_tokens: float = float(REPORT_LATENCY.answer_tokens)
    #: coefficient of variation of each request's duration (gamma distributed; 0: fixed)
    service_cv: float = 0.3
    prefill_tokens_per_second: float = 5000.0
    transcript_tokens_per_minute: int = 200
    profile: tuple[float, ...] = DEFAULT_PROFILE

    def __post_init__(self) -> None:
        if len(self.profile) != 24 or min(self.profile) < 0 or sum(self.profile) <= 0:
            raise ValueError("profile: need 24 non-negative hourly weights, not all zero")

    @property
    def answer_seconds(self) -> float:
        return self.first_token_seconds + self.answer_tokens / self.tokens_per_second


def _vary(rng: random.Random, mean: float, cv: float) -> float:
    if cv <= 0 or mean <= 0:
        return mean
    shape = 1.0 / (cv * cv)
    return rng.gammavariate(shape, mean / shape)


def day_of_questions(w: Workload, seed: int) -> list[Question]:
    """Every question of one day, in arrival order."""
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not security
    total = sum(w.profile)
    out: list[Question] = []
    lecture = 0
    for hour, weight in enumerate(w.profile):
        sessions = _poisson(rng, w.sessions_per_day * weight / total)
        for _ in range(sessions):
            start = (hour + rng.random()) * 3600.0
            lecture_tokens = rng.expovariate(1.0 / w.lecture_minutes_mean) * w.transcript_tokens_per_minute
            prefill = lecture_tokens / w.prefill_tokens_per_second
            count = 1 + _poisson(rng, max(0.0, w.questions_per_session - 1))
            t = start
            lecture += 1
            for k in range(count):
                # The prefill is paid by the engine where the instance does not hold the lecture.
                answer = _vary(rng, w.answer_seconds, w.service_cv)
                if rng.random() < w.voice_share:
                    # AgentCore serves a waiting answer before a waiting transcription.
                    transcription = _vary(rng, w.transcription_seconds, w.service_cv)
                    q = Question(t, (transcription, answer), (TRANSCRIBE, ANSWER))
                else:
                    q = Question(t, (answer,), (ANSWER,))
                q.lecture, q.cold, q.follow_up = lecture, prefill, k > 0
                q.first_token_base = w.first_token_seconds
                out.append(q)
                # The student's next question follows this answer (with its prefill when first).
                t += rng.expovariate(1.0 / w.think_seconds) + (answer + prefill if k == 0 else answer)
    out.sort(key=lambda q: q.arrival)
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson variate: Knuth's product method for small means, a normal approximation above."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def poisson_arrivals(rate: float, count: int, mean_service: float, seed: int) -> list[Question]:
    """M/M/c input: `count` one-request questions, Poisson arrivals, exponential service."""
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not security
    t, out = 0.0, []
    for _ in range(count):
        t += rng.expovariate(rate)
        out.append(Question(t, (rng.expovariate(1.0 / mean_service),)))
    return out
