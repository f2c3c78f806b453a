"""One question in flight (`Query`) and the figures logged for it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.outbox import Outbox

metrics_log = logging.getLogger("synapscribe.agentcore.metrics")


@dataclass
class Query:
    """One question in flight: its job, where its messages go, the tasks to cancel when it ends,
    and the figures logged for it."""

    job: QueryJob
    spans: Spans
    outbox: Outbox
    stats: dict[str, Any]
    pending: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.job.requestId

    def since_receipt(self) -> float:
        """Milliseconds since the edge received the query (the contract's timings)."""
        return round(max(0.0, time.time() * 1000 - self.job.receivedAtMs), 1)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A task of this query, cancelled if the query ends before it does."""
        task = asyncio.create_task(coro)
        self.pending.append(task)
        return task


def log_figures(stats: dict[str, Any], spans: Spans, t0: float, cpu0: float) -> None:
    """Log the query's figures (one JSON line on synapscribe.agentcore.metrics)."""
    end = time.perf_counter()
    total = end - t0
    stats.update(
        event="query",
        agentcoreMs=round(total * 1000, 2),
        # CPU of the whole process (all threads) while the query ran: the query's own CPU
        # cost when it ran alone (the benchmark's sequential queries).
        processCpuMs=round((time.process_time() - cpu0) * 1000, 2),
        ownMs=round((total - spans.covered(t0, end)) * 1000, 3),
        waits={k: round(v * 1000, 1) for k, v in _by_kind(spans).items()},
        # How many of each (pushes, TTS and S3 calls per question: what its CPU scales with).
        calls=dict(Counter(what for _, _, what in spans.intervals)),
    )
    metrics_log.info(json.dumps(stats))


def first_audio(outbox: Outbox, job: QueryJob, urls: list[str]) -> float | None:
    if not urls:
        return None
    if outbox.first_audio_at is not None:
        return round(max(0.0, outbox.first_audio_at - job.receivedAtMs), 1)
    return None


def _by_kind(spans: Spans) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b, what in spans.intervals:
        out[what] = out.get(what, 0.0) + (b - a)
    return out
