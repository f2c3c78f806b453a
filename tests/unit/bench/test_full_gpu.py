"""bench full's GPU memory from AgentCore's diagnostics (`--gpu-url`): reading, summing, peaks, flags."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from synapscribe_ops.bench import full
from synapscribe_ops.bench.report import Row

A10G = {
    "index": 0,
    "name": "NVIDIA A10G",
    "memoryTotalMiB": 23028,
    "memoryUsedMiB": 17893,
    "utilizationPercent": 41,
}


@pytest.fixture
def diagnostics() -> Iterator[dict[str, Any]]:
    """A loopback server answering GET / with `state["status"]` and `state["body"]`."""
    state: dict[str, Any] = {"status": 200, "body": [A10G]}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = state["body"] if isinstance(state["body"], bytes) else json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1/diagnostics/gpu"
    yield state
    server.shutdown()
    server.server_close()


def test_reading_fills_the_row(diagnostics: dict[str, Any]) -> None:
    reader = full.GpuReader(diagnostics["url"])
    row = Row("idle")
    asyncio.run(reader.record(row))
    assert row.extra == {
        "GPU memory used (MiB)": "17,893",
        "GPU memory total (MiB)": "23,028",
        "GPU utilization (%)": "41",
    }
    assert reader.problem is None


def test_gpus_are_summed_and_a_row_keeps_its_peak() -> None:
    row = Row("peak")
    second = {**A10G, "index": 1, "memoryUsedMiB": 107, "utilizationPercent": None}
    full.record_gpus(row, [A10G, second])
    assert row.extra["GPU memory used (MiB)"] == "18,000"
    assert row.extra["GPU memory total (MiB)"] == "46,056"
    assert row.extra["GPU utilization (%)"] == "41"
    full.record_gpus(row, [{**A10G, "memoryUsedMiB": 9000, "utilizationPercent": 99}])
    assert row.extra["GPU memory used (MiB)"] == "18,000"  # lower reading: the peak stays
    full.record_gpus(row, [{**A10G, "memoryUsedMiB": 20000, "utilizationPercent": 99}])
    assert row.extra["GPU memory used (MiB)"] == "20,000" and row.extra["GPU utilization (%)"] == "99"
    empty = Row("n/a")
    full.record_gpus(empty, [{**A10G, "memoryUsedMiB": None}])
    assert empty.extra == {}


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (
            503,
            {"detail": "nvidia-smi is not installed on this host"},
            "answered 503: nvidia-smi is not installed",
        ),
        (403, {"detail": "diagnostics answer only callers on the instance itself"}, "answered 403"),
        (200, {"not": "a list"}, "not the diagnostics' GPU list"),
        (200, b"<html>", "not the diagnostics' GPU list"),
    ],
)
def test_problems_are_reported_not_raised(
    diagnostics: dict[str, Any], status: int, body: Any, problem: str
) -> None:
    diagnostics["status"], diagnostics["body"] = status, body
    reader = full.GpuReader(diagnostics["url"])
    row = Row("idle")
    asyncio.run(reader.record(row))
    assert row.extra == {}
    assert reader.problem is not None and problem in reader.problem


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synapscribe bench full")
    full.add_arguments(parser)
    return parser.parse_args(argv)


def test_bad_gpu_url_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = _parse(["--url", "ws://127.0.0.1:1", "--gpu-url", "ftp://x", "--out", str(tmp_path / "out")])
    assert full.run(args) == 2
    assert "--gpu-url" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unreachable_gpu_url_is_a_note_and_the_columns_are_there(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    args = _parse(
        [
            "--url",
            f"ws://127.0.0.1:{port}",
            "--gpu-url",
            f"http://127.0.0.1:{port}/v1/diagnostics/gpu",
            "--repeats",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert full.run(args) == 1  # setup fails: nothing listens
    md = (out / "report.md").read_text()
    assert "| GPU memory used (MiB) | GPU memory total (MiB) | GPU utilization (%) |" in md
