"""The capacity planner: facts.md's figures, the 32K figures moving, prices, bad input, and the
default demand (one instance) when no --students is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synapscribe.cli import main
from synapscribe.planner import plan_lecture
from synapscribe.platform import PlatformConfig
from synapscribe_ops.capacity.plan import (
    GIB,
    MIB,
    MODEL_PRESETS,
    CapacityInputError,
    build_model,
    concurrent_requests,
    load_price_table,
    plan_capacity,
)

QWEN = MODEL_PRESETS["qwen2.5-omni-3b"]
PRICES = load_price_table()
#: facts.md's context modes: 16K (the default) and the model's own 32K.
K16, K32 = 16384, 32768


def _plan(platform: PlatformConfig, **kw):
    kw.setdefault("prices", load_price_table())
    return plan_capacity(QWEN, kw.pop("instances", ["g5.2xlarge"]), platform=platform, **kw)


def test_kv_per_token_matches_facts():
    # 2 x 36 layers x 2 KV heads x 128 x 2 B (bf16)
    assert QWEN.kv_bytes_per_token == 36_864
    assert build_model("qwen2.5-omni-3b", dtype="fp8").kv_bytes_per_token == 18_432


def test_default_contexts_are_the_platforms(platform: PlatformConfig):
    assert platform.context_lengths == (K16, K32)
    assert [c.max_model_len for c in _plan(platform).instances[0].contexts] == list(platform.context_lengths)
    at32 = platform.with_max_model_len(K32)
    assert [c.max_model_len for c in _plan(at32).instances[0].contexts] == [K32]


def test_g5_figures_match_facts(platform: PlatformConfig):
    plan = _plan(platform)
    assert plan.kv_bytes_per_token == 36_864
    assert plan.gpu_memory_utilization == platform.vllm.gpu_memory_utilization
    g5 = plan.instances[0]
    c16 = next(c for c in g5.contexts if c.max_model_len == K16)
    assert c16.kv_bytes_per_sequence == 576 * MIB
    # eight full 16K sequences (max_num_seqs = 8): 4.5 GiB
    assert platform.vllm.max_num_seqs == 8
    assert c16.kv_bytes_for_max_num_seqs == int(4.5 * GIB)
    # ~11 GB of weights on a 24 GB A10G at 0.85 still leaves room for the eight
    assert g5.kv_cache_bytes >= c16.kv_bytes_for_max_num_seqs
    assert c16.full_sequences_fit >= 8
    assert c16.concurrent_sequences == 8
    assert g5.kv_cache_tokens == g5.kv_cache_bytes // 36_864
    assert g5.kv_cache_bytes == g5.usable_bytes - g5.weight_bytes - g5.overhead_bytes
    gpu_mib = PRICES.instances["g5.2xlarge"].gpu_memory_mib
    assert g5.gpu_memory_bytes == gpu_mib * MIB
    assert g5.usable_bytes == int(gpu_mib * MIB * platform.vllm.gpu_memory_utilization)
    # A10G: 24 GB on the box, ~22.5 GiB as the driver reports it.
    assert 22 * GIB < g5.gpu_memory_bytes < 24 * GIB


def test_32k_figures_move(platform: PlatformConfig):
    g5 = _plan(platform).instances[0]
    c16, c32 = (next(c for c in g5.contexts if c.max_model_len == n) for n in (K16, K32))
    assert c32.kv_bytes_per_sequence == 2 * c16.kv_bytes_per_sequence == 1152 * MIB
    assert c32.full_sequences_fit == c16.full_sequences_fit // 2
    assert c32.full_sequences_fit < platform.vllm.max_num_seqs  # 32K on a 24 GB GPU serves fewer at once
    assert c32.max_audio_lecture_seconds > 2 * c16.max_audio_lecture_seconds
    assert c32.max_transcript_lecture_seconds > 2 * c16.max_transcript_lecture_seconds


@pytest.mark.parametrize("length", [K16, K32])
def test_lecture_limits_are_the_planners(platform: PlatformConfig, length: int):
    c = next(c for c in _plan(platform).instances[0].contexts if c.max_model_len == length)
    at = platform.with_max_model_len(length)
    assert c.max_audio_lecture_seconds == at.max_audio_lecture_seconds
    assert c.max_transcript_lecture_seconds == at.max_transcript_lecture_seconds
    # plan_lecture switches mode exactly at these limits
    assert plan_lecture(c.max_audio_lecture_seconds, at).mode == "audio"
    assert plan_lecture(c.max_audio_lecture_seconds + 1, at).mode == "transcript"
    assert plan_lecture(c.max_transcript_lecture_seconds, at).mode == "transcript"
    assert plan_lecture(c.max_transcript_lecture_seconds + 1, at).mode is None
    # facts.md: 16K holds at most ~655 s of audio, 32K ~21.8 min, before any reserve
    assert c.max_audio_lecture_seconds < length / 25


def test_l40s_holds_more_than_a10g(platform: PlatformConfig):
    plan = _plan(platform, instances=["g5.2xlarge", "g6e.xlarge"])
    a10g, l40s = plan.instances
    assert l40s.kv_cache_bytes > 2 * a10g.kv_cache_bytes
    assert l40s.contexts[1].concurrent_sequences == platform.vllm.max_num_seqs


def test_instances_and_cost_follow_students(platform: PlatformConfig):
    prices = load_price_table()
    plan = _plan(platform, students=40, duty_cycle=0.5)
    assert plan.concurrent_requests == 20
    c16 = plan.instances[0].contexts[0]
    assert c16.instances_needed == 3  # 20 in flight / 8 per instance
    spec = prices.instances["g5.2xlarge"]
    assert c16.cost is not None
    assert c16.cost["spot_per_hour"] == pytest.approx(3 * spec.spot_usd_per_hour)
    assert c16.cost["on_demand_per_month"] == pytest.approx(3 * spec.on_demand_usd_per_hour * 730, abs=0.01)
    c32 = plan.instances[0].contexts[1]
    assert c32.instances_needed is not None
    assert c32.instances_needed > c16.instances_needed
    assert concurrent_requests(0, 1.0) == 0
    assert concurrent_requests(3, 0.1) == 1


def test_model_that_does_not_fit_has_no_instance_count(platform: PlatformConfig):
    big = build_model("qwen2.5-omni-3b", weights_gib=30)
    plan = plan_capacity(big, ["g5.2xlarge"], prices=load_price_table(), platform=platform, students=5)
    c = plan.instances[0].contexts[0]
    assert plan.instances[0].kv_cache_bytes == 0
    assert (c.full_sequences_fit, c.instances_needed, c.cost) == (0, None, None)


def test_custom_model_needs_every_number():
    with pytest.raises(CapacityInputError) as err:
        build_model(None, layers=4, kv_heads=2, head_dim=64)
    assert err.value.flag == "--weights-gib"
    m = build_model(None, layers=4, kv_heads=2, head_dim=64, weights_gib=1, dtype="float32")
    assert m.kv_bytes_per_token == 2 * 4 * 2 * 64 * 4


def test_price_override_file_merges(tmp_path: Path, platform: PlatformConfig):
    f = tmp_path / "prices.yaml"
    f.write_text(
        "region: eu-west-1\n"
        "instances:\n"
        "  g5.2xlarge: {spot_usd_per_hour: 1.0}\n"
        "  g6e.2xlarge: {gpu: NVIDIA L40S, gpu_memory_mib: 46068, on_demand_usd_per_hour: 2.5,"
        " spot_usd_per_hour: 1.25}\n"
    )
    table = load_price_table(f)
    assert table.region == "eu-west-1"
    assert table.instances["g5.2xlarge"].spot_usd_per_hour == 1.0
    # kept from the packaged table
    assert table.instances["g5.2xlarge"].gpu_memory_mib == PRICES.instances["g5.2xlarge"].gpu_memory_mib
    plan = plan_capacity(QWEN, ["g6e.2xlarge"], prices=table, platform=platform, students=8)
    assert plan.instances[0].contexts[0].cost == {
        "on_demand_per_hour": 2.5,
        "spot_per_hour": 1.25,
        "on_demand_per_month": 1825.0,
        "spot_per_month": 912.5,
    }


@pytest.mark.parametrize(
    "text",
    [
        "instances:\n  g5.2xlarge: {spot_usd_per_hour: -1}\n",
        "instances:\n  new.type: {spot_usd_per_hour: 1}\n",
        "instances: [1, 2]\n",
        "prices: {}\n",
        ": : not yaml [",
    ],
)
def test_bad_price_file_is_refused(tmp_path: Path, text: str):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(CapacityInputError) as err:
        load_price_table(f)
    assert err.value.flag == "--prices"


def test_without_students_each_row_is_one_instance(platform: PlatformConfig):
    plan = _plan(platform, instances=["g5.2xlarge", "g6e.xlarge"])
    assert (plan.students, plan.concurrent_requests) == (None, None)
    for ip in plan.instances:
        spec = PRICES.instances[ip.instance]
        for c in ip.contexts:
            assert c.instances_needed == 1
            assert c.cost is not None
            assert c.cost["spot_per_hour"] == pytest.approx(spec.spot_usd_per_hour)
            assert c.cost["on_demand_per_month"] == pytest.approx(spec.on_demand_usd_per_hour * 730, abs=0.01)
    # Explicitly none: a fleet scaled to zero costs nothing.
    zero = _plan(platform, students=0).instances[0].contexts[0]
    assert (zero.instances_needed, zero.cost and zero.cost["spot_per_hour"]) == (0, 0)


def test_cli_without_students_prices_one_instance_and_says_so(capsys, platform: PlatformConfig):
    assert main(["capacity", "--instance", "g5.2xlarge"]) == 0
    out = capsys.readouterr().out
    assert "no --students given" in out and "pass --students N" in out
    spot = PRICES.instances["g5.2xlarge"].spot_usd_per_hour
    rows = [line for line in out.splitlines() if line.startswith("| g5.2xlarge |") and "serves" in line]
    assert len(rows) == len(platform.context_lengths)
    assert rows[0].startswith(
        f"| g5.2xlarge | 16,384 | 1 (serves {platform.vllm.max_num_seqs} at once) | {spot:.2f} |"
    )
    assert not any("| 0 | 0.00 |" in line for line in out.splitlines())
    assert main(["capacity", "--json", "--instance", "g5.2xlarge"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["students"] is None
    assert [c["instances_needed"] for c in data["instances"][0]["contexts"]] == [1, 1]
    assert main(["capacity", "--instance", "g5.2xlarge", "--students", "40", "--duty-cycle", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "40 students at duty cycle 0.5 = 20 requests in flight" in out and "no --students" not in out
    assert "| g5.2xlarge | 16,384 | 3 |" in out


def test_cli_table_and_json(capsys):
    assert main(["capacity", "--instance", "g5.2xlarge", "--students", "16"]) == 0
    out = capsys.readouterr().out
    assert "36,864 B KV per token" in out
    assert "| g5.2xlarge | 16,384 | 576 MiB | 4.50 GiB |" in out
    assert "| g5.2xlarge | 32,768 | 1,152 MiB |" in out
    assert main(["capacity", "--json", "--max-model-len", "32768"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kv_bytes_per_token"] == 36_864
    assert {i["instance"] for i in data["instances"]} == {"g5.2xlarge", "g6.2xlarge", "g6e.xlarge"}
    assert [c["max_model_len"] for c in data["instances"][0]["contexts"]] == [32768]


def test_cli_overrides_change_the_figures(capsys):
    assert main(["capacity", "--json", "--instance", "g5.2xlarge", "--utilization", "0.9"]) == 0
    high = json.loads(capsys.readouterr().out)["instances"][0]["kv_cache_bytes"]
    assert main(["capacity", "--json", "--instance", "g5.2xlarge"]) == 0
    default = json.loads(capsys.readouterr().out)["instances"][0]["kv_cache_bytes"]
    assert high > default


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--instance", "p5.48xlarge"], "--instance"),
        (["--model", "llama-70b"], "--model"),
        (["--max-model-len", "65536"], "--max-model-len"),
        (["--utilization", "1.5"], "--utilization"),
        (["--duty-cycle", "2"], "--duty-cycle"),
        (["--model", "custom", "--layers", "4"], "--kv-heads"),
        (["--prices", "/nonexistent/prices.yaml"], "--prices"),
    ],
)
def test_cli_bad_values_exit_2_naming_the_flag(capsys, argv: list[str], flag: str):
    assert main(["capacity", *argv]) == 2
    captured = capsys.readouterr()
    assert flag in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--layers", "-3"], "--layers"),
        (["--students", "-1"], "--students"),
        (["--weights-gib", "-2"], "--weights-gib"),
        (["--head-dim", "abc"], "--head-dim"),
        (["--dtype", "int3"], "--dtype"),
    ],
)
def test_cli_malformed_numbers_exit_2_naming_the_flag(capsys, argv: list[str], flag: str):
    with pytest.raises(SystemExit) as exit_:
        main(["capacity", *argv])
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
