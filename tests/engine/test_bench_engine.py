"""`synapscribe bench engine` against the real engine: per-turn cost of an audio-mode lecture for base64
items and file:// URLs, vLLM's own cache counters, and the planner's token counts beside the engine's.

file:// items need a server started with `--allowed-local-media-path`, which the vLLM unit (and so the
session's `engine`) does not pass. By default the test measures base64 items on the session's engine
and checks that file:// is reported as skipped with its reason: a second server would add about 3.5
minutes and 4.5 GiB to `make test` for a transport AgentCore does not use (base64 stays: see
agentcore/prompts.py for the figures). SYNAPSCRIBE_ENGINE_FILE_URLS=1 starts that second server (the
unit's command line plus the flag, and `--enforce-eager`, which only shortens its start) and measures
both transports; SYNAPSCRIBE_ENGINE_URL with SYNAPSCRIBE_ENGINE_MEDIA_DIR uses a server started by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_server import Engine, _wait_listed, engine_command, flag, free_port, spawn, stop

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@contextlib.contextmanager
def file_url_engine(venv: Path, model: Path, workdir: Path) -> Iterator[Engine]:
    """A second server: the unit's command line plus --allowed-local-media-path DIR; stopped after."""
    port = free_port()
    command = engine_command(venv, model, port, workdir)
    media = workdir / "media"
    media.mkdir()
    argv = [*command.argv, "--allowed-local-media-path", str(media), "--enforce-eager"]
    server = Engine(
        f"http://{flag(argv, '--host')}:{port}",
        flag(argv, "--served-model-name"),
        model,
        workdir / "vllm.log",
        media_dir=media,
    )
    started = time.monotonic()
    server.process = spawn(argv, command.env, workdir / "vllm.log")
    try:
        _wait_listed(server, 900)
        server.start_seconds = time.monotonic() - started
        yield server
    finally:
        stop(server.process)


@pytest.fixture
def media_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    by_hand = os.environ.get("SYNAPSCRIBE_ENGINE_URL") and os.environ.get("SYNAPSCRIBE_ENGINE_MEDIA_DIR")
    if by_hand:
        engine: Engine = request.getfixturevalue("engine")
        engine.media_dir = Path(os.environ["SYNAPSCRIBE_ENGINE_MEDIA_DIR"])
        yield engine
        return
    if not os.environ.get("SYNAPSCRIBE_ENGINE_FILE_URLS"):
        yield request.getfixturevalue("engine")
        return
    venv, model = request.getfixturevalue("engine_build")
    with file_url_engine(venv, model, tmp_path / "server") as server:
        print(f"\nsecond server (file:// items) started in {server.start_seconds:.0f} s")
        yield server


@pytest.mark.needs_tool("espeak-ng", "sox", "ffmpeg")
def test_bench_engine_measures_both_transports_on_the_engine(media_engine: Engine, tmp_path: Path) -> None:
    engine, media_dir = media_engine, media_engine.media_dir
    out = tmp_path / "engine.json"
    argv = [
        sys.executable,
        "-m",
        "synapscribe.cli",
        "bench",
        "engine",
        "--url",
        str(engine.base_url),
        "--model",
        str(engine.model),
        "--lecture-seconds",
        "100",
        "--turns",
        "2",
        "--json",
        str(out),
        *(["--media-dir", str(media_dir)] if media_dir else []),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=540)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["failures"] == []
    if media_dir:
        assert report["skipped"] == {}
        transports = ["base64", "uuid", "miss", "file://"]
    else:
        assert set(report["skipped"]) == {"file://"}, report["skipped"]
        assert "--media-dir" in report["skipped"]["file://"]
        transports = ["base64", "uuid", "miss"]
    turns = {(t["transport"], t["turn"]): t for t in report["turns"]}
    assert set(turns) == {(t, n) for t in transports for n in (1, 2)}
    items = report["items"]
    assert items == 2
    for transport in transports:
        cold, warm = turns[(transport, 1)], turns[(transport, 2)]
        # A new lecture: nothing of it cached (the system prompt's first block may be). The
        # follow-up: the lecture's items come from the multimodal cache, and all but the last
        # partial block of the first turn's prompt from the prefix cache.
        assert cold["prefix_hits"] < 0.1 * cold["prompt_tokens"], cold
        assert cold["mm_hits"] == 0 or transport == "miss", cold
        assert warm["mm_hits"] == items, warm
        assert warm["prefix_hits"] >= 0.9 * cold["prompt_tokens"], warm
        # AgentCore's bound never undercounts the engine.
        assert warm["planner_bound"] >= warm["planner_exact"] >= warm["prompt_tokens"], warm
    # By uuid (agentcore/media_refs.py): a follow-up carries the lecture in under 2 KB; the miss
    # path's first turn carries the refused request and the resend with the data.
    b64 = turns[("base64", 2)]
    for transport in ("uuid", "miss"):
        assert turns[(transport, 2)]["request_bytes"] < 4096 < b64["request_bytes"] / 20, turns[
            (transport, 2)
        ]
    assert turns[("miss", 1)]["request_bytes"] > turns[("uuid", 1)]["request_bytes"]
    assert "miss      1 (miss, resent)" in done.stdout, done.stdout
    if media_dir:
        url = turns[("file://", 2)]
        assert url["request_bytes"] < b64["request_bytes"] / 20  # paths instead of the audio itself
    for count in report["audio"]:
        # The planner's count of AgentCore's items (from their decoded samples) equals the engine's
        # (its count of the lecture message with and without the audio parts); its bound from the
        # items' seconds never undercounts.
        assert count["planner"] == count["engine"], count
        assert count["planner_bound"] >= count["engine"], count
