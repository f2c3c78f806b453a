"""`synapscribe bench engine` against the real engine: per-turn cost of an audio-mode lecture for base64
items and file:// URLs, vLLM's own cache counters, and the planner's token counts beside the engine's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from required_tools import require_tools

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


def media_dir_of(engine: Any) -> Path | None:
    """Where the engine reads file:// items from (its --allowed-local-media-path), when it has one: the
    fixture's server, or $SYNAPSCRIBE_ENGINE_MEDIA_DIR for a server started by hand with the flag."""
    found = getattr(engine, "media_dir", None) or os.environ.get("SYNAPSCRIBE_ENGINE_MEDIA_DIR")
    return Path(found) if found else None


def test_bench_engine_measures_both_transports_on_the_engine(engine: Any, tmp_path: Path) -> None:
    require_tools("espeak-ng", "sox", "ffmpeg")
    media_dir = media_dir_of(engine)
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
    transports = ["base64", "file://"] if media_dir else ["base64"]
    if not media_dir:
        assert "--allowed-local-media-path" in report["skipped"]["file://"]
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
        assert cold["mm_hits"] == 0, cold
        assert warm["mm_hits"] == items, warm
        assert warm["prefix_hits"] >= 0.9 * cold["prompt_tokens"], warm
        # AgentCore's bound never undercounts the engine.
        assert warm["planner_bound"] >= warm["planner_exact"] >= warm["prompt_tokens"], warm
    if media_dir:
        b64, url = turns[("base64", 2)], turns[("file://", 2)]
        assert url["request_bytes"] < b64["request_bytes"] / 20  # paths instead of the audio itself
    for count in report["audio"]:
        # The planner's audio tokens (25 a second, rounded up per item) against the engine's (its
        # count of the lecture message with and without the audio parts, less <|audio_bos|> and
        # <|audio_eos|> per item): never fewer, at most the rounding (one per item) more; with the
        # planner's per-item allowance, never fewer than the engine's whole count.
        engine_audio = count["engine"] - 2 * count["items"]
        assert 0 <= count["planner_audio"] - engine_audio <= count["items"], count
        assert count["planner_items"] >= count["engine"], count
