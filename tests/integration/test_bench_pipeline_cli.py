"""`synapscribe bench pipeline` as a subprocess at a tenth of the report's latencies: the three
figures are printed and in the JSON, and they are sane. The goals are printed, never asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def bench(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "bench", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_pipeline_prints_the_three_figures() -> None:
    done = bench("--latency-scale", "0.1", "--queries", "2", "--concurrency", "8", "--json")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "latencies scaled by 0.1" in out and "2 sequential voice queries, then 8 at once" in out

    overhead = re.search(r"AgentCore own time, waits excluded +median ([\d.]+) ms", out)
    cpu = re.search(r"AgentCore CPU per query +median ([\d.]+) ms .*goal < 60 ms: (ok|MISSED)", out)
    first_audio = re.search(
        r"time to first audio +median ([\d.]+) s +goal <= ([\d.]+) s \(within 5%.*: (ok|MISSED)", out
    )
    goal_inputs = re.search(
        r"goal = first token 0\.04 s \+ first sentence \((\d+) tokens at 400 tokens/s\) [\d.]+ s "
        r"\+ its speech 0\.03 s",
        out,
    )
    against_ideal = re.search(
        r"AgentCore against the ideal: ([\d.]+) s / ([\d.]+) s = ([\d.]+) +goal within 5%: (ok|MISSED)", out
    )
    ratio = re.search(
        r"8 concurrent queries +([\d.]+) s, ratio ([\d.]+) +goal <= 1\.3: (ok|MISSED) +\(0 failed\)", out
    )
    assert overhead and cpu and first_audio and goal_inputs and ratio and against_ideal, out
    assert "inputs: the report's first token, decode rate and TTS time per sentence" in out

    figures = json.loads(out[out.index("\n{") + 1 :])
    assert figures["latency_scale"] == 0.1
    assert figures["sequential_queries"] == 2 and figures["concurrent_queries"] == 8
    assert figures["concurrent_failures"] == 0
    assert len(figures["concurrent_queries_detail"]) == 8
    # The printed figures are the JSON's.
    assert float(overhead.group(1)) == pytest.approx(figures["overhead_ms_median"], abs=0.01)
    assert float(first_audio.group(1)) == pytest.approx(figures["first_audio_s_median"], abs=0.01)
    assert float(first_audio.group(2)) == pytest.approx(figures["first_audio_goal_s_median"], abs=0.01)
    assert float(cpu.group(1)) == pytest.approx(figures["agentcore_cpu_ms_median"], abs=0.1)
    assert float(against_ideal.group(3)) == pytest.approx(figures["concurrent_over_ideal"], abs=0.001)
    assert figures["max_num_seqs"] == 8
    assert float(ratio.group(2)) == pytest.approx(figures["concurrency_ratio"], abs=0.01)

    # Sanity: overhead is a part of a query's time; first audio comes before the whole answer;
    # eight queries at once take at least as long as one and no longer than eight in a row.
    one = figures["one_query_s_median"]
    assert 0 < figures["overhead_ms_median"] <= figures["overhead_ms_max"] < one * 1000
    assert 0 < figures["first_audio_s_median"] < one
    # The first audio's goal: first token 0.04 s + the first sentence at 400 tokens/s + 0.03 s.
    assert 0.07 < figures["first_audio_goal_s_median"] < one
    assert figures["agentcore_cpu_ms_median"] > 0
    # The answer's text goes in fewer pushes than the model's chunks (deltas.py), and the chunks
    # are fewer than the stand-in's tokens (stream_interval).
    per_query = re.search(r"per query: ([\d.]+) pushes, ([\d.]+) answer stream chunks read", out)
    assert per_query and float(per_query.group(1)) == figures["pushes_per_query_median"], out
    assert 0 < figures["pushes_per_query_median"] < figures["answer_chunks_median"]
    # Scaled latencies: the transcription takes 0.18 s, the first token 0.04 s.
    assert figures["asr_ms_median"] >= 180 and figures["first_token_ms_median"] >= 40
    assert figures["concurrent_wall_s"] >= one * 0.9
    assert 0.9 <= figures["concurrency_ratio"] <= 8
    assert figures["concurrency_ratio"] == pytest.approx(figures["concurrent_wall_s"] / one, rel=1e-6)
    # The ideal schedule times are printed beside the ratio, from the stand-in's scaled latencies.
    ideal = re.search(r"ideal, 8 model slots, 2 requests per voice query .* one query ([\d.]+) s:", out)
    early = re.search(r"([\d.]+) s \(ratio ([\d.]+)\) when every transcription starts at once", out)
    assert ideal and early, out
    assert float(ideal.group(1)) == pytest.approx(figures["ideal_one_query_s"], abs=0.01)
    assert float(early.group(2)) == pytest.approx(
        figures["concurrency_ratio_ideal_transcripts_early"], abs=0.01
    )
    assert 0.18 + 0.03 <= figures["ideal_one_query_s"] < one
    assert (
        1
        <= figures["concurrency_ratio_ideal_answers_first"]
        <= figures["concurrency_ratio_ideal_transcripts_early"]
    )
    for detail in figures["concurrent_queries_detail"]:
        assert 0 < detail["firstAudioMs"] < detail["totalMs"]


def test_bench_pipeline_on_other_slot_counts() -> None:
    """`--max-num-seqs`: the stand-in and AgentCore both run that many requests at once, and the
    ideal schedule is computed for it (one slot: each query's two requests run in turn)."""
    done = bench(
        "--latency-scale", "0.1", "--queries", "1", "--concurrency", "3", "--max-num-seqs", "1", "--json"
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    figures = json.loads(out[out.index("\n{") + 1 :])
    assert figures["max_num_seqs"] == 1 and "1 model slots (max_num_seqs)" in out
    # Three queries, six requests on one slot: at least 3 * (0.18 s + the answer) of model time.
    assert figures["ideal_concurrent_s"] >= 3 * (0.18 + 0.04)
    assert figures["concurrent_wall_s"] >= figures["ideal_concurrent_s"] * 0.95
    assert re.search(r"ideal, 1 model slots", out), out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--latency-scale", "0"], "--latency-scale"),
        (["--queries", "0"], "--queries"),
        (["--max-num-seqs", "0"], "--max-num-seqs"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(args: list[str], flag: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2 and flag in done.stderr, done.stderr
