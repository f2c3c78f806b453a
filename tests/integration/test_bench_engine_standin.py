"""`synapscribe bench engine` against the model stand-in (the real engine's run is in tests/engine/),
and its flags: a bad one exits 2 naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def bench_engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "bench", "engine", *args],
        capture_output=True,
        text=True,
        timeout=150,
    )


def test_bench_engine_prints_the_turn_table_and_the_token_counts(
    start_standin: Callable[..., str], tmp_path: Path
) -> None:
    url = start_standin()
    out = tmp_path / "engine.json"
    done = bench_engine("--url", url + "/v1", "--lecture-seconds", "70", "--turns", "2", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "base64    1 (cold)" in done.stdout and "base64    2 (follow-up)" in done.stdout
    assert "skipped file://: no --media-dir" in done.stdout  # and why
    report = json.loads(out.read_text())
    turns = {(t["transport"], t["turn"]): t for t in report["turns"]}
    assert set(turns) == {(t, n) for t in ("base64", "uuid", "miss") for n in (1, 2)}
    cold, warm = turns[("base64", 1)], turns[("base64", 2)]
    # By uuid the follow-up carries the lecture as uuids alone; the miss path's first turn is the
    # stand-in's cache-miss refusal and the resend with the data (both counted).
    assert turns[("uuid", 2)]["request_bytes"] < 4096 < warm["request_bytes"]
    assert turns[("miss", 2)]["request_bytes"] < 4096
    assert turns[("miss", 1)]["request_bytes"] > turns[("uuid", 1)]["request_bytes"]
    assert turns[("uuid", 2)]["prefix_hits"] > 0.9 * turns[("uuid", 1)]["prompt_tokens"]
    assert "miss      1 (miss, resent)" in done.stdout
    assert report["items"] == 2  # 70 s in items of at most 60 s
    # A follow-up re-sends the same lecture: a few bytes more, and the stand-in's prefix cache hits.
    assert 0 < warm["request_bytes"] - cold["request_bytes"] < 2000
    assert cold["prefix_hits"] == 0 and warm["prefix_hits"] > 0.9 * cold["prompt_tokens"]
    assert warm["planner_bound"] >= warm["planner_exact"] >= warm["prompt_tokens"]
    audio = report["audio"][0]
    assert audio["planner_bound"] >= audio["engine"] == audio["planner"]  # the stand-in counts as the engine


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--url", "ws://127.0.0.1:1"], "--url"),
        (["--url", "http://127.0.0.1:1", "--transports", "carrier-pigeon"], "--transports"),
        (["--url", "http://127.0.0.1:1", "--turns", "9"], "--turns"),
        (["--url", "http://127.0.0.1:1", "--media-dir", "/nonexistent/dir"], "--media-dir"),
        (["--url", "http://127.0.0.1:1", "--lecture-seconds", "0"], "--lecture-seconds"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(args: list[str], needle: str) -> None:
    done = bench_engine(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert needle in done.stderr


def test_an_unreachable_server_exits_1_saying_so() -> None:
    from synapscribe_local.services import free_port

    done = bench_engine("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert done.returncode == 1
    assert "/v1/models" in done.stderr
