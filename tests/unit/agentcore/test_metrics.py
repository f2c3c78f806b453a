"""AgentCore's EMF metrics, the vLLM relay and the per-question correlation id."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import correlation, metrics
from synapscribe.agentcore.jobs import QueryJob

#: Units CloudWatch accepts (the EMF specification refers to MetricDatum's StandardUnit).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
    "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
}  # fmt: skip


def assert_emf(doc: dict[str, Any]) -> None:
    """The rules of Amazon CloudWatch's "Specification: Embedded metric format" (User Guide)."""
    meta = doc["_aws"]
    # LogGroupName: the CloudWatch agent's extension (where it writes the document it received).
    assert (
        {"Timestamp", "CloudWatchMetrics"} <= set(meta) <= {"Timestamp", "CloudWatchMetrics", "LogGroupName"}
    )
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000  # ms
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert 1 <= len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30  # [] is allowed: the metric without dimensions
            for name in dimension_set:
                assert isinstance(doc[name], str), name  # a dimension's value is a root string member
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"} and metric["Unit"] in UNITS
            value = doc[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100 and all(isinstance(v, int | float) for v in values)


def _metrics(sink: list[str], in_flight: int = 3) -> metrics.QuestionMetrics:
    return metrics.QuestionMetrics(
        {"InstanceId": "i-0abc"}, in_flight=lambda: in_flight, sink=sink.append, clock=lambda: 1_767_000_000.0
    )


def test_one_batch_of_emf_documents_for_many_questions():
    lines: list[str] = []
    m = _metrics(lines)
    for i in range(250):
        m.record(
            {"event": "query", "firstAudioMs": 1000.0 + i, "totalMs": 4000.0, "asrMs": 1800.0, "ownMs": 2.5},
            0.0,
        )
    m.record({"event": "query", "error": "busy"}, 20.0)
    m.record({"event": "query", "error": "upstream_unavailable", "totalMs": 10.0})
    m.sample()
    sent = m.flush()
    assert sent == len(lines) == 4  # 250 first-audio values: 3 documents of <= 100, plus ErrorsByCode
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        assert_emf(doc)
    first = docs[0]
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.NAMESPACE
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["InstanceId"], []]
    assert (first["Questions"], first["Answered"], first["Busy"], first["Errors"]) == (252, 250, 1, 1)

    def series(name: str) -> list[float]:
        return [v for d in docs if name in d for v in (d[name] if isinstance(d[name], list) else [d[name]])]

    assert series("TimeToFirstAudio") == [1000.0 + i for i in range(250)]
    assert series("QueueWait") == [0.0] * 250 + [20000.0]
    assert first["InFlightToModel"] == 3.0
    by_code = docs[-1]
    assert by_code["ErrorCode"] == "upstream_unavailable" and by_code["ErrorsByCode"] == 1.0
    assert by_code["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["ErrorCode", "InstanceId"],
        ["ErrorCode"],
    ]
    # The next interval starts from zero and still reports (alarms see zeros, not missing data).
    m.flush()
    empty = json.loads(lines[-1])
    assert_emf(empty)
    assert empty["Questions"] == 0 and "TimeToFirstAudio" not in empty


def test_fleet_dimension_rolls_up_per_group_for_target_tracking():
    """With SYNAPSCRIBE_FLEET_GROUP set, every document also carries a roll-up by
    AutoScalingGroupName alone: the series whose Average the group's target-tracking policy
    tracks (cdk/synapscribe_cdk/constructs/gpu_fleet.py)."""
    lines: list[str] = []
    m = metrics.QuestionMetrics(
        {"InstanceId": "i-0abc"},
        in_flight=lambda: 4,
        sink=lines.append,
        clock=lambda: 1_767_000_000.0,
        fleet_dimensions={"AutoScalingGroupName": "SynapScribe-dev-gpu"},
    )
    m.record({"event": "query", "error": "upstream_unavailable"})
    m.flush()
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        assert_emf(doc)
        assert doc["AutoScalingGroupName"] == "SynapScribe-dev-gpu"
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["AutoScalingGroupName", "InstanceId"],
        ["AutoScalingGroupName"],
        [],
    ]
    assert docs[0]["InFlightToModel"] == 4.0
    assert docs[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["AutoScalingGroupName", "ErrorCode", "InstanceId"],
        ["AutoScalingGroupName", "ErrorCode"],
        ["ErrorCode"],
    ]


VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen2.5-omni-3b"} 5.0
vllm:num_requests_waiting{engine="0",model_name="qwen2.5-omni-3b"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="qwen2.5-omni-3b"} 0.42
vllm:prefix_cache_queries_total{engine="0",model_name="qwen2.5-omni-3b"} %s
vllm:prefix_cache_hits_total{engine="0",model_name="qwen2.5-omni-3b"} %s
"""


@pytest.fixture
def vllm_metrics_server():
    reads = iter([("1000", "400"), ("3000", "1900")])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (VLLM_METRICS % next(reads)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_vllm_figures_are_relayed(vllm_metrics_server: str):
    lines: list[str] = []
    m = _metrics(lines)

    async def two_reads() -> None:
        async with httpx.AsyncClient() as client:
            relay = metrics.VllmRelay(vllm_metrics_server, client)
            m.relay_vllm(await relay.read())
            m.relay_vllm(await relay.read())

    asyncio.run(two_reads())
    m.flush()
    doc = json.loads(lines[0])
    assert_emf(doc)
    assert (doc["ModelRequestsRunning"], doc["ModelRequestsWaiting"]) == (5.0, 2.0)
    assert doc["KvCacheUsage"] == pytest.approx(42.0)
    assert doc["PrefixCacheHitRate"] == pytest.approx(100 * 1500 / 2000)  # since the previous read


def test_udp_sink_reaches_a_listener_on_loopback():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    sink = metrics.udp_sink(f"udp://127.0.0.1:{listener.getsockname()[1]}")
    m = metrics.QuestionMetrics(
        {"InstanceId": "i-1"}, in_flight=lambda: 0, sink=sink, log_group="/synapscribe/gpu/m"
    )
    m.record({"event": "query", "totalMs": 5.0})
    m.flush()
    doc = json.loads(listener.recv(65536))
    listener.close()
    assert_emf(doc)
    assert doc["Questions"] == 1 and doc["_aws"]["LogGroupName"] == "/synapscribe/gpu/m"
    with pytest.raises(ValueError, match="udp://HOST:PORT"):
        metrics.udp_sink("tcp://127.0.0.1:25888")


def test_stats_lines_feed_the_metrics_with_the_questions_queue_wait():
    lines: list[str] = []
    m = _metrics(lines)
    handler = metrics.StatsHandler(m)
    logger = logging.getLogger(metrics.STATS_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # as Observer.start does
    try:
        with correlation.bound("q-1") as scope:
            scope.queue_wait_seconds = 1.5
            logger.info(json.dumps({"event": "query", "firstAudioMs": 900.0}))
        logger.info("not json")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    m.flush()
    doc = json.loads(lines[0])
    assert doc["Questions"] == 1 and doc["TimeToFirstAudio"] == 900.0 and doc["QueueWait"] == 1500.0


def test_correlation_id_in_every_log_line_of_the_question_and_its_tasks():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(correlation.CorrelationFilter())
    log = logging.getLogger("synapscribe.test.correlation")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    async def question() -> None:
        log.info("in the question")
        await asyncio.create_task(asyncio.sleep(0))
        await asyncio.create_task(_child(log))

    async def main() -> None:
        with correlation.bound("edge-42"):
            task = asyncio.create_task(question())
        log.info("outside")
        await task

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
    ids = {r.getMessage(): r.correlation_id for r in records}  # type: ignore[attr-defined]
    assert ids == {"in the question": "edge-42", "in a task of it": "edge-42", "outside": "-"}


async def _child(log: logging.Logger) -> None:
    log.info("in a task of it")


def test_admission_wait_is_added_to_the_question():
    async def main() -> tuple[float, float]:
        gate = adm.Admission(1, 5.0)
        await gate.acquire()
        with correlation.bound("waiter") as scope:
            waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.05)
        gate.release()
        await waiter
        gate.release()
        with correlation.bound("direct") as direct:
            await gate.acquire()  # a free slot: no wait
        return scope.queue_wait_seconds, direct.queue_wait_seconds

    waited, direct = asyncio.run(main())
    assert waited >= 0.04 and direct == 0.0


def test_query_job_takes_the_edges_correlation_id():
    base = {
        "connectionId": "c1", "owner": "eu-west-1:abc", "sessionId": "s1", "requestId": "r1",
        "text": "why?", "receivedAtMs": 1,
    }  # fmt: skip
    assert QueryJob.model_validate({**base, "correlationId": "edge-7"}).correlationId == "edge-7"
    assert QueryJob.model_validate(base).correlationId is None
    with pytest.raises(ValueError, match="correlationId"):
        QueryJob.model_validate({**base, "correlationId": "bad id with spaces"})


def test_the_guide_names_the_namespace_and_log_group_in_use():
    from pathlib import Path

    from synapscribe.platform import load_platform

    guide = (Path(__file__).resolve().parents[3] / "docs" / "operators-guide.md").read_text()
    assert f"`{metrics.NAMESPACE}`" in guide
    assert f"--log-group-name {load_platform().fleet.log_groups.names('dev')['agentcore']} " in guide
    for name in (*metrics.TIMINGS.values(), metrics.QUEUE_WAIT, "InFlightToModel", "ErrorsByCode"):
        assert f"`{name}`" in guide, name
    for name, _unit, _scale in metrics.VLLM_GAUGES.values():
        assert f"`{name}`" in guide, name
