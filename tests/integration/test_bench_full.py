"""`synapscribe bench full` against the real local stack (model stand-in), with small sizes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    # The benchmark's concurrent sessions all ask as one identity: its per-identity question
    # quotas are raised for this stack (the throughput of the model is measured, not the quotas).
    env = {"SYNAPSCRIBE_QUOTA_JOBS_IN_FLIGHT": "64", "SYNAPSCRIBE_QUOTA_QUESTIONS_PER_MINUTE": "10000"}
    with LocalStackProcess(env=env) as running:
        yield running


def _table(md: str, title: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table under `## {title}`."""
    m = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", md, flags=re.M | re.S)
    assert m, f"no section {title!r} in the report"
    lines = [ln for ln in m.group(1).splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, f"section {title!r} has no table rows"
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _median_seconds(cell: str) -> float:
    m = re.fullmatch(r"([0-9.]+) s", cell)
    assert m, f"not a latency: {cell!r}"
    return float(m.group(1))


def test_bench_full_writes_every_table_and_the_plots(stack: LocalStackProcess, tmp_path: Path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "synapscribe.cli",
            "bench",
            "full",
            "--url",
            stack.url,
            "--local-info",
            str(stack.info_path),
            "--repeats",
            "1",
            "--transcription-seconds",
            "8,45",
            "--tts-words",
            "5,20",
            "--concurrency",
            "1,3",
            "--lecture-seconds",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, (
        f"bench full failed:\n{proc.stdout}\n{proc.stderr[-3000:]}\n{stack.log_tail()}"
    )
    assert "bench full:" in proc.stderr  # the progress bar
    md = (out / "report.md").read_text()

    # Against the stand-in everything is labelled as such.
    assert "**Model stand-in:**" in md
    assert "(model stand-in)" in proc.stdout

    transcription = _table(md, "Transcription latency and real-time factor")
    assert [r[0] for r in transcription] == ["8 s audio", "45 s audio"]
    assert all(r[1] == "1" for r in transcription)
    assert transcription[0][6] != "-"  # RTF
    assert "voice query" in transcription[0][7]
    assert "audio mode" in transcription[1][7]
    assert all(r[5].startswith("1.800 s") for r in transcription)  # the report's target beside it

    tts = {r[0]: r for r in _table(md, "Text-to-speech latency")}
    assert tts["5 words (TTS service)"][1] == "1"
    assert tts["20 words (TTS service)"][1] == "1"
    assert tts["first sentence, through the stack"][1] == "1"

    e2e = {r[0]: r for r in _table(md, "End-to-end voice question")}
    for label in ("transcription (server asrMs)", "time to first audio (client)", "answer complete (client)"):
        assert e2e[label][1] == "1", label
    assert e2e["answer complete (client)"][5].startswith("8.200 s")
    assert _median_seconds(e2e["time to first audio (client)"][3]) <= _median_seconds(
        e2e["answer complete (client)"][3]
    )

    follow = {r[0]: r for r in _table(md, "Multi-turn follow-up latency and the prefix cache")}
    cold, warm = follow["first question on a new lecture"], follow["follow-up in the same session"]
    assert cold[1] == warm[1] == "1"
    # The stand-in models vLLM's prefix cache: the follow-up reuses more of its prompt.
    cold_hits, warm_hits = (int(r[6].replace(",", "")) for r in (cold, warm))
    assert warm_hits > cold_hits

    throughput = {r[0]: r for r in _table(md, "Throughput by concurrent sessions")}
    assert throughput["1 concurrent session"][1] == "1"
    assert throughput["3 concurrent sessions"][1] == "3"
    assert throughput["3 concurrent sessions"][7] == "0"  # no errors

    # Accuracy is measured (the stand-in hears the embedded text) but labelled as not meaningful.
    accuracy = {r[0]: r for r in _table(md, "Accuracy: transcripts and answers")}
    heard = accuracy["transcript word accuracy, generated voice questions"]
    assert heard[1] == "1" and heard[3] == "100.0 %" and heard[5] == "≥ 95.0 %", heard
    named = accuracy["answers that name what the lecture says"]
    assert named[7].endswith("answer(s)") and int(named[1]) >= 2, named
    assert "> **Not meaningful:** the model stand-in" in md

    gpu = _table(md, "GPU memory (KV cache in use)")
    assert any(r[1] != "0" for r in gpu)

    for png in ("latency-vs-audio-length.png", "latency-vs-concurrency.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 5000
        assert f"]({png})" in md
    results = json.loads((out / "results.json").read_text())
    assert results["standin"] is True
    assert {t["key"] for t in results["tables"]} == {
        "transcription",
        "tts",
        "end_to_end",
        "follow_up",
        "throughput",
        "accuracy",
        "gpu",
    }
    assert "stand-in" in results["wordsNotMeaningful"]
