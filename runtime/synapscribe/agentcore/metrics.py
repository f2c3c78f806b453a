"""AgentCore's metrics in CloudWatch's embedded metric format (EMF), batched per flush interval.

Per question AgentCore already logs one JSON line (logger `synapscribe.agentcore.metrics`: outcome,
asrMs, firstTokenMs, firstAudioMs, totalMs, ownMs). `StatsHandler` reads those lines, so the
pipeline needs no further calls; `QuestionMetrics` aggregates them, samples the requests in
flight to vLLM, and every `interval` seconds writes a few EMF documents (one JSON line each):
never one CloudWatch API call per question. The CloudWatch agent on the host receives them on
its EMF listener (`SYNAPSCRIBE_EMF_ENDPOINT`, e.g. udp://127.0.0.1:25888) and CloudWatch Logs
extracts the metrics; without an endpoint they are logged (logger `synapscribe.agentcore.emf`),
which is what a local run shows.

Document shape (Amazon CloudWatch User Guide, "Specification: Embedded metric format"): a root
object with `_aws` = {Timestamp (ms since the epoch), CloudWatchMetrics: [{Namespace, Dimensions
(a list of dimension-name lists), Metrics: [{Name, Unit}]}]}; every dimension and metric named
there is a root member; a metric's value is a number or an array of at most 100 numbers; at most
100 metrics per directive.

`VllmRelay` reads vLLM's own Prometheus /metrics (vLLM V1 names: vllm:num_requests_running,
vllm:num_requests_waiting, vllm:kv_cache_usage_perc, vllm:prefix_cache_queries_total and
vllm:prefix_cache_hits_total; docs.vllm.ai "Production Metrics") and relays them in the same batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from synapscribe.agentcore import correlation

NAMESPACE = "SynapScribe/AgentCore"
STATS_LOGGER = "synapscribe.agentcore.metrics"
emf_log = logging.getLogger("synapscribe.agentcore.emf")
log = logging.getLogger(__name__)

#: EMF limits (the specification above).
MAX_VALUES_PER_METRIC = 100
MAX_METRICS_PER_DIRECTIVE = 100

#: stats key (milliseconds) -> metric name
TIMINGS: dict[str, str] = {
    "asrMs": "TimeToTranscript",
    "firstTokenMs": "TimeToFirstToken",
    "firstAudioMs": "TimeToFirstAudio",
    "totalMs": "TimeToAnswerComplete",
    "ownMs": "Overhead",
}
QUEUE_WAIT = "QueueWait"
BUSY_CODE = "busy"

#: vLLM /metrics sample name -> (metric name, unit, scale)
VLLM_GAUGES: dict[str, tuple[str, str, float]] = {
    "vllm:num_requests_running": ("ModelRequestsRunning", "Count", 1.0),
    "vllm:num_requests_waiting": ("ModelRequestsWaiting", "Count", 1.0),
    "vllm:kv_cache_usage_perc": ("KvCacheUsage", "Percent", 100.0),
}
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"

Sink = Callable[[str], None]


def log_sink(line: str) -> None:
    emf_log.info(line)


def udp_sink(endpoint: str) -> Sink:
    """Datagrams to the CloudWatch agent's EMF listener (udp://host:port); one document each."""
    parts = urlsplit(endpoint)
    if parts.scheme != "udp" or not parts.hostname or not parts.port:
        raise ValueError(f"SYNAPSCRIBE_EMF_ENDPOINT {endpoint!r}: expected udp://HOST:PORT")
    address = (parts.hostname, parts.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(line: str) -> None:
        try:
            sock.sendto(line.encode("utf-8") + b"\n", address)
        except OSError as exc:  # metrics never break answering
            log.warning("EMF datagram to %s failed: %s", endpoint, exc)

    return send


def parse_prometheus(text: str) -> dict[str, float]:
    """Sample name -> value summed over its label sets (vLLM has one engine here)."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0].strip()
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


class QuestionMetrics:
    def __init__(
        self,
        dimensions: dict[str, str],
        *,
        in_flight: Callable[[], int],
        sink: Sink = log_sink,
        namespace: str = NAMESPACE,
        clock: Callable[[], float] = time.time,
        log_group: str | None = None,
        fleet_dimensions: dict[str, str] | None = None,
    ) -> None:
        if not dimensions:
            raise ValueError("at least one dimension (e.g. InstanceId)")
        #: e.g. {"AutoScalingGroupName": ...}: added to every document and kept in a roll-up of its
        #: own, so the group's target-tracking policy can take the Average over its instances.
        self.fleet_dimensions = dict(fleet_dimensions or {})
        self.dimensions = {**dict(dimensions), **self.fleet_dimensions}
        self.in_flight = in_flight
        self.sink = sink
        self.namespace = namespace
        self.clock = clock
        #: `_aws.LogGroupName`: where the CloudWatch agent writes the documents it receives
        self.log_group = log_group
        self._reset()
        self._vllm: dict[str, float] = {}
        self._prefix_last: tuple[float, float] | None = None

    def _reset(self) -> None:
        self.counts = {"Questions": 0, "Answered": 0, "Busy": 0, "Errors": 0}
        self.errors_by_code: dict[str, int] = {}
        self.timings: dict[str, list[float]] = {}
        self.in_flight_samples: list[float] = []

    # -- input ---------------------------------------------------------------------------------

    def record(self, stats: dict[str, Any], queue_wait_seconds: float | None = None) -> None:
        """One question's outcome and timings (the pipeline's per-query stats line)."""
        self.counts["Questions"] += 1
        code = stats.get("error")
        if code is None:
            self.counts["Answered"] += 1
        elif code == BUSY_CODE:
            self.counts["Busy"] += 1
        else:
            self.counts["Errors"] += 1
            self.errors_by_code[str(code)] = self.errors_by_code.get(str(code), 0) + 1
        for key, name in TIMINGS.items():
            value = stats.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.timings.setdefault(name, []).append(float(value))
        if queue_wait_seconds is not None:
            self.timings.setdefault(QUEUE_WAIT, []).append(round(queue_wait_seconds * 1000, 1))

    def sample(self) -> None:
        self.in_flight_samples.append(float(self.in_flight()))

    def relay_vllm(self, samples: dict[str, float]) -> None:
        """vLLM's gauges as last read, and the prefix-cache hit rate since the previous read."""
        for source, (name, _unit, scale) in VLLM_GAUGES.items():
            if source in samples:
                self._vllm[name] = samples[source] * scale
        if PREFIX_QUERIES in samples and PREFIX_HITS in samples:
            now = (samples[PREFIX_QUERIES], samples[PREFIX_HITS])
            if self._prefix_last is not None:
                queries, hits = now[0] - self._prefix_last[0], now[1] - self._prefix_last[1]
                if queries > 0:
                    self._vllm["PrefixCacheHitRate"] = 100.0 * hits / queries
            self._prefix_last = now

    # -- output --------------------------------------------------------------------------------

    def documents(self) -> list[dict[str, Any]]:
        """The EMF documents for the interval just ended (and a reset)."""
        if not self.in_flight_samples:
            self.sample()
        values: dict[str, tuple[str, list[float]]] = {
            name: ("Count", [float(n)]) for name, n in self.counts.items()
        }
        values["InFlightToModel"] = ("Count", self.in_flight_samples)
        for name, series in self.timings.items():
            values[name] = ("Milliseconds", series)
        for name, value in self._vllm.items():
            unit = "Percent" if name in ("KvCacheUsage", "PrefixCacheHitRate") else "Count"
            values[name] = (unit, [value])
        docs = self._chunked(values, self.dimensions)
        for code, n in sorted(self.errors_by_code.items()):
            docs += self._chunked(
                {"ErrorsByCode": ("Count", [float(n)])}, {**self.dimensions, "ErrorCode": code}
            )
        self._reset()
        self._vllm = {}
        return docs

    def _chunked(
        self, values: dict[str, tuple[str, list[float]]], dims: dict[str, str]
    ) -> list[dict[str, Any]]:
        """As few documents as the limits allow: <= 100 values per metric, <= 100 metrics each."""
        docs: list[dict[str, Any]] = []
        pending = {name: (unit, list(series)) for name, (unit, series) in values.items()}
        while pending:
            doc: dict[str, Any] = dict(dims)
            metrics = []
            for name in list(pending)[:MAX_METRICS_PER_DIRECTIVE]:
                unit, series = pending[name]
                head, rest = series[:MAX_VALUES_PER_METRIC], series[MAX_VALUES_PER_METRIC:]
                doc[name] = head[0] if len(head) == 1 else head
                metrics.append({"Name": name, "Unit": unit})
                if rest:
                    pending[name] = (unit, rest)
                else:
                    del pending[name]
            doc["_aws"] = {
                "Timestamp": int(self.clock() * 1000),
                "CloudWatchMetrics": [
                    # The instance's figures, and the same values without a dimension: the
                    # fleet-wide series the dashboard's percentiles and rates are drawn from.
                    {
                        "Namespace": self.namespace,
                        "Dimensions": self._dimension_sets(dims),
                        "Metrics": metrics,
                    }
                ],
            }
            if self.log_group:
                doc["_aws"]["LogGroupName"] = self.log_group
            docs.append(doc)
        return docs

    def _dimension_sets(self, dims: dict[str, str]) -> list[list[str]]:
        extra = set(dims) - set(self.dimensions)
        sets = [sorted(dims)]
        if self.fleet_dimensions:
            sets.append(sorted(extra | set(self.fleet_dimensions)))
        sets.append(sorted(extra))
        return sets

    def flush(self) -> int:
        docs = self.documents()
        for doc in docs:
            self.sink(json.dumps(doc, separators=(",", ":")))
        return len(docs)


class StatsHandler(logging.Handler):
    """Feeds the pipeline's per-query stats lines (logger synapscribe.agentcore.metrics) to metrics."""

    def __init__(self, metrics: QuestionMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stats = json.loads(record.getMessage())
        except ValueError:
            return
        if isinstance(stats, dict) and stats.get("event") == "query":
            scope = correlation.current()
            self.metrics.record(stats, scope.queue_wait_seconds if scope is not None else None)


class VllmRelay:
    def __init__(self, metrics_url: str, client: httpx.AsyncClient) -> None:
        self.url = metrics_url
        self.client = client

    async def read(self) -> dict[str, float]:
        response = await self.client.get(self.url, timeout=5.0)
        response.raise_for_status()
        return parse_prometheus(response.text)


async def run_flusher(
    metrics: QuestionMetrics, relay: VllmRelay | None, *, interval: float = 60.0, sample_every: float = 1.0
) -> None:
    """Sample in-flight requests every `sample_every` s; relay vLLM and flush every `interval` s."""
    next_flush = time.monotonic() + interval
    try:
        while True:
            await asyncio.sleep(sample_every)
            metrics.sample()
            if time.monotonic() >= next_flush:
                next_flush += interval
                await _relay(metrics, relay)
                metrics.flush()
    finally:
        with contextlib.suppress(Exception):
            metrics.flush()


async def _relay(metrics: QuestionMetrics, relay: VllmRelay | None) -> None:
    if relay is None:
        return
    try:
        metrics.relay_vllm(await relay.read())
    except (httpx.HTTPError, OSError) as exc:
        log.warning("vLLM metrics at %s unreadable: %s", relay.url, exc)


class Observer:
    """AgentCore's metrics for its lifetime: the stats handler, the flusher task, the vLLM relay."""

    def __init__(
        self,
        in_flight: Callable[[], int],
        vllm_metrics_url: str | None,
        *,
        dimensions: dict[str, str],
        endpoint: str | None = None,
        interval: float = 60.0,
        log_group: str | None = None,
        fleet_dimensions: dict[str, str] | None = None,
    ) -> None:
        sink = udp_sink(endpoint) if endpoint else log_sink
        self.metrics = QuestionMetrics(
            dimensions, in_flight=in_flight, sink=sink, log_group=log_group, fleet_dimensions=fleet_dimensions
        )
        self.handler = StatsHandler(self.metrics)
        self._client = httpx.AsyncClient() if vllm_metrics_url else None
        self.relay = VllmRelay(vllm_metrics_url, self._client) if vllm_metrics_url and self._client else None
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Observer:
        stats = logging.getLogger(STATS_LOGGER)
        stats.addHandler(self.handler)
        if not stats.isEnabledFor(logging.INFO):
            stats.setLevel(logging.INFO)  # the metrics need the stats lines at any log level
        self._task = asyncio.create_task(run_flusher(self.metrics, self.relay, interval=self.interval))
        return self

    async def stop(self) -> None:
        logging.getLogger(STATS_LOGGER).removeHandler(self.handler)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()
