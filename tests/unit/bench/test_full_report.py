"""bench full's statistics, Markdown report, plots, metrics parsing and flags (no stack needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from synapscribe_ops.bench import full
from synapscribe_ops.bench.full_scenarios import first_sentence_audio_lag, new_results
from synapscribe_ops.bench.report import TARGETS, percentile, render_markdown
from synapscribe_ops.bench.vllm_metrics import parse_metrics
from synapscribe_ops.smoke.client import QueryResult, check_frame


def test_percentile_is_nearest_rank():
    samples = [float(i) for i in range(1, 21)]  # 1..20
    assert percentile(samples, 95) == 19.0
    assert percentile(samples, 50) == 10.0
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 95)


def _filled():
    results = new_results("ws://127.0.0.1:1", "local", 2, "now")
    t = results.table("transcription")
    t.row("30 s audio", target=TARGETS["transcription"], x=30).samples += [1.0, 2.0, 3.0]
    t.row("300 s audio", target=TARGETS["transcription"], x=300).samples += [0.5]
    c = results.table("throughput")
    c.row("1 concurrent session", x=1, target=8.2).samples += [2.0, 2.5]
    c.row("4 concurrent sessions", x=4, target=8.2).samples += [9.0, 10.0]
    return results


def test_markdown_has_every_table_with_targets_and_verdicts():
    results = _filled()
    md = render_markdown(results)
    for title in (
        "Transcription latency and real-time factor",
        "Text-to-speech latency",
        "End-to-end voice question",
        "Multi-turn follow-up latency",
        "Throughput by concurrent sessions",
        "GPU memory",
    ):
        assert f"## {title}" in md
    assert "| 30 s audio | 3 | 1.000 s | 2.000 s | 3.000 s | 1.800 s missed |" in md
    assert "| 300 s audio | 1 | 0.500 s | 0.500 s | 0.500 s | 1.800 s met |" in md
    assert "transcription 1.8 s, first token 0.4 s, TTS 0.3 s per sentence, end to end 8.2 s" in md
    assert "stand-in" not in md
    results.standin = True
    md = render_markdown(results)
    assert "**Model stand-in:**" in md
    assert "## Throughput by concurrent sessions (model stand-in)" in md
    # The stand-in's figures are the platform's overhead: no verdict against the model's targets.
    assert "| 30 s audio | 3 | 1.000 s | 2.000 s | 3.000 s | 1.800 s |" in md
    assert " met |" not in md and " missed |" not in md


def test_plots_and_results_are_written(tmp_path: Path):
    results = _filled()
    full.write_report(results, tmp_path)
    assert results.plots == ["latency-vs-audio-length.png", "latency-vs-concurrency.png"]
    for name in results.plots:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}]({name})" in (tmp_path / "report.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    row = data["tables"][0]["rows"][0]
    assert row["stats"] == {"n": 3, "min": 1.0, "median": 2.0, "p95": 3.0}


def test_no_plot_without_points(tmp_path: Path):
    results = new_results("ws://x", "local", 1, "now")
    full.write_report(results, tmp_path)
    assert results.plots == []
    assert not list(tmp_path.glob("*.png"))


def test_parse_metrics_sums_labelled_samples():
    text = (
        "# HELP vllm:prefix_cache_hits Prefix cache hits.\n"
        "# TYPE vllm:prefix_cache_hits counter\n"
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 640.0\n'
        'vllm:request_success_total{finished_reason="stop"} 3\n'
        'vllm:request_success_total{finished_reason="length"} 2\n'
        "vllm:kv_cache_usage_perc 0.25\n"
        "garbage line\n"
    )
    m = parse_metrics(text)
    assert m["vllm:prefix_cache_hits_total"] == 640.0
    assert m["vllm:request_success_total"] == 5.0
    assert m["vllm:kv_cache_usage_perc"] == 0.25


def test_first_sentence_lag_is_from_the_delta_that_completed_it():
    result = QueryResult(request_id="r1", sent_at=0.0)
    frames = [
        (0.10, {"type": "answerDelta", "requestId": "r1", "text": "Plants make"}),
        (0.20, {"type": "answerDelta", "requestId": "r1", "text": " sugar from light."}),
        (0.30, {"type": "answerDelta", "requestId": "r1", "text": " More."}),
        (
            0.55,
            {
                "type": "audio",
                "requestId": "r1",
                "seq": 0,
                "url": "http://x/0.mp3",
                "text": "Plants make sugar from light.",
            },
        ),
    ]
    result.messages = [check_frame(json.dumps(d), at) for at, d in frames]
    lag = first_sentence_audio_lag(result)
    assert lag == pytest.approx(0.35)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synapscribe bench full")
    full.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "--url"),
        (["--url", "http://127.0.0.1:1"], "--url"),
        (["--url", "ws://127.0.0.1:1", "--region", "eu-west-1"], "--identity-pool-id"),
        (
            ["--url", "wss://x/prod", "--region", "eu-west-1", "--identity-pool-id", "eu-west-1:1"],
            "--guest-role-arn",
        ),
        (["--stack-outputs", "/nonexistent.json"], "--stack-outputs"),
        (["--url", "ws://127.0.0.1:1", "--metrics-url", "ftp://x"], "--metrics-url"),
        (["--url", "ws://127.0.0.1:1", "--local-info", "/nonexistent.json"], "--local-info"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(capsys, argv: list[str], needle: str, tmp_path: Path):
    assert full.run(_parse([*argv, "--out", str(tmp_path / "out")])) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert not (tmp_path / "out" / "report.md").exists()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--repeats", "0"], "--repeats"),
        (["--concurrency", "1,x"], "--concurrency"),
        (["--tts-words", ""], "--tts-words"),
    ],
)
def test_malformed_numbers_are_refused_by_the_parser(capsys, argv: list[str], flag: str):
    with pytest.raises(SystemExit) as exit_:
        _parse(["--url", "ws://127.0.0.1:1", *argv])
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_metrics_url_beside_the_openai_base():
    assert full.metrics_url_of("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/metrics"


def test_unreachable_stack_writes_a_report_that_says_so(tmp_path: Path):
    # A port nobody listens on: setup fails, the report still says what happened, exit 1.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = _parse(
        ["--url", f"ws://127.0.0.1:{port}", "--repeats", "1", "--out", str(tmp_path), "--no-progress"]
    )
    assert full.run(args) == 1
    md = (tmp_path / "report.md").read_text()
    assert "setup failed" in md
    assert f"127.0.0.1:{port}" in md
