"""Figures of one simulated day: waits, `busy`, instance-hours, cost."""

from __future__ import annotations

from dataclasses import dataclass

from synapscribe_ops.simulate.engine import Outcome
from synapscribe_ops.simulate.queueing import percentile


@dataclass(frozen=True)
class DayFigures:
    questions: int
    answered: int
    busy: int
    no_host: int
    wait_p50: float
    wait_p95: float
    wait_p99: float
    #: how long answers waited for a slot (first audio = this + the model's first token + speech)
    answer_wait_p50: float
    answer_wait_p95: float
    answer_wait_p99: float
    instance_hours: float
    cost_usd: float
    peak_desired: int
    interruptions: int
    #: with lectures modelled (FleetModel.held_lectures): follow-ups whose instance held their
    #: lecture's prefix, and the time from a question to its answer's first token
    follow_up_hits: float | None = None
    first_token_p50: float | None = None
    first_token_p95: float | None = None
    first_token_p99: float | None = None

    @property
    def busy_rate(self) -> float:
        """Questions refused (`busy` after the queue timeout, or no host serving) per question."""
        return (self.busy + self.no_host) / self.questions if self.questions else 0.0


def figures(out: Outcome, usd_per_hour: float, lectures: bool = False) -> DayFigures:
    qs = out.questions
    extra: dict[str, float] = {}
    if lectures:
        follow_ups = [q for q in qs if q.follow_up and q.hit is not None]
        first = sorted(q.first_token for q in qs if q.outcome == "answered" and q.first_token is not None)
        extra = {
            "follow_up_hits": sum(bool(q.hit) for q in follow_ups) / len(follow_ups) if follow_ups else 0.0,
            "first_token_p50": percentile(first, 50),
            "first_token_p95": percentile(first, 95),
            "first_token_p99": percentile(first, 99),
        }
    waits = sorted(q.wait for q in qs if q.outcome in ("answered", "busy"))
    answer_waits = sorted(q.answer_wait for q in qs if q.outcome in ("answered", "busy"))
    hours = out.instance_seconds / 3600.0
    return DayFigures(
        questions=len(qs),
        answered=sum(q.outcome == "answered" for q in qs),
        busy=sum(q.outcome == "busy" for q in qs),
        no_host=sum(q.outcome == "no_host" for q in qs),
        wait_p50=percentile(waits, 50),
        wait_p95=percentile(waits, 95),
        wait_p99=percentile(waits, 99),
        answer_wait_p50=percentile(answer_waits, 50),
        answer_wait_p95=percentile(answer_waits, 95),
        answer_wait_p99=percentile(answer_waits, 99),
        instance_hours=hours,
        cost_usd=hours * usd_per_hour,
        peak_desired=max(out.desired_by_minute, default=0),
        interruptions=out.interruptions,
        **extra,
    )


ROWS: tuple[tuple[str, str], ...] = (
    ("questions", "{0.questions}"),
    ("answered", "{0.answered}"),
    ("busy (queue wait > timeout)", "{0.busy}"),
    ("no host serving", "{0.no_host}"),
    ("busy rate", "{0.busy_rate:.3%}"),
    ("wait p50 / p95 / p99 (s)", "{0.wait_p50:.2f} / {0.wait_p95:.2f} / {0.wait_p99:.2f}"),
    (
        "answer wait p50 / p95 / p99",
        "{0.answer_wait_p50:.2f} / {0.answer_wait_p95:.2f} / {0.answer_wait_p99:.2f}",
    ),
    ("instance-hours", "{0.instance_hours:.1f}"),
    ("cost (USD per day)", "{0.cost_usd:.2f}"),
    ("peak desired instances", "{0.peak_desired}"),
    ("spot interruptions", "{0.interruptions}"),
)


#: Printed when every day modelled its lectures (`simulate --compare-affinity`).
LECTURE_ROWS: tuple[tuple[str, str], ...] = (
    ("follow-ups on a warm prefix", "{0.follow_up_hits:.1%}"),
    (
        "first token p50 / p95 / p99 (s)",
        "{0.first_token_p50:.2f} / {0.first_token_p95:.2f} / {0.first_token_p99:.2f}",
    ),
)


def side_by_side(named: list[tuple[str, DayFigures]]) -> str:
    width = max(24, *(len(n) + 2 for n, _ in named))
    lines = [f"{'':30}" + "".join(f"{n:>{width}}" for n, _ in named)]
    rows = ROWS + (LECTURE_ROWS if all(f.follow_up_hits is not None for _, f in named) else ())
    for label, fmt in rows:
        lines.append(f"{label:30}" + "".join(f"{fmt.format(f):>{width}}" for _, f in named))
    return "\n".join(lines)
