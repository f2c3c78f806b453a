"""`synapscribe capacity --cold-start`: each way of getting the weights onto a new host, its start-up
time computed from the model's size and the rates, and its cost from capacity_prices.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from synapscribe.cli import main
from synapscribe.platform import PlatformConfig, load_platform, parse_platform
from synapscribe_ops.capacity.coldstart_cost import compare_cold_start
from synapscribe_ops.capacity.plan import MIB, MODEL_PRESETS, load_price_table

QWEN = MODEL_PRESETS["qwen2.5-omni-3b"]


def _compare(platform: PlatformConfig, **kw):
    prices = kw.pop("prices", load_price_table())
    kw.setdefault("weight_bytes", QWEN.weight_bytes)
    kw.setdefault("instance_store_gb", {n: s.instance_store_gb for n, s in prices.instances.items()})
    kw.setdefault("launches_per_month", 100)
    kw.setdefault("zones", 2)
    kw.setdefault("hours_per_month", 730.0)
    return {o.name: o for o in compare_cold_start(platform, prices.cold_start, **kw).options}


def test_options_are_computed_from_sizes_rates_and_prices():
    platform = load_platform()
    cs = load_price_table().cold_start
    fleet = platform.fleet
    fixed = fleet.boot_seconds + fleet.engine_warmup_seconds
    options = _compare(platform)
    # Lazy: what the platform's estimate leaves for the weights; free.
    assert options["lazy (default)"].expected_startup_seconds == fleet.host_startup_seconds
    assert options["lazy (default)"].usd_per_month == 0
    for rate in (100, 200, 300):
        o = options[f"provisioned-rate-{rate}"]
        assert o.weights_read_seconds == math.ceil(cs.snapshot_gib * 1024 / rate)
        assert o.expected_startup_seconds == fixed + o.weights_read_seconds
        assert o.usd_per_launch == pytest.approx(
            cs.provisioned_rate_usd_per_gib_per_mib_s * cs.snapshot_gib * rate
        )
        assert o.usd_per_month == pytest.approx(o.usd_per_launch * 100, abs=0.01)
    # Faster and dearer as the rate rises.
    assert (
        options["provisioned-rate-300"].expected_startup_seconds
        < options["provisioned-rate-100"].expected_startup_seconds
    )
    fsr = options["fast-snapshot-restore"]
    assert fsr.weights_read_seconds == math.ceil(QWEN.weight_bytes / MIB / cs.gp3_throughput_mib_s)
    assert fsr.usd_per_month == pytest.approx(cs.fast_snapshot_restore_usd_per_zone_hour * 2 * 730)
    nvme = options["local-nvme"]
    assert nvme.weights_read_seconds == math.ceil(QWEN.weight_bytes / MIB / cs.s3_download_mib_s)
    assert "no room" not in nvme.note


def test_bigger_weights_and_more_zones_move_the_figures():
    platform = load_platform()
    small, big = _compare(platform), _compare(platform, weight_bytes=4 * QWEN.weight_bytes, zones=3)
    assert (
        big["fast-snapshot-restore"].weights_read_seconds
        > small["fast-snapshot-restore"].weights_read_seconds
    )
    assert big["fast-snapshot-restore"].usd_per_month == pytest.approx(
        small["fast-snapshot-restore"].usd_per_month * 1.5
    )
    # Weights larger than an instance store leave that type out of the NVMe option.
    huge = _compare(platform, weight_bytes=300 * 10**9)
    assert "no room on g6e.xlarge" in huge["local-nvme"].note


def test_the_lazy_figure_follows_host_startup_seconds():
    data = load_platform().model_dump()
    data["fleet"]["host_startup_seconds"] = 900
    options = _compare(parse_platform(data))
    assert options["lazy (default)"].expected_startup_seconds == 900
    data["fleet"]["host_startup_seconds"] = (
        data["fleet"]["boot_seconds"] + data["fleet"]["engine_warmup_seconds"]
    )
    with pytest.raises(ValueError, match=r"must exceed fleet\.boot_seconds"):
        parse_platform(data)


def test_cli_prints_the_comparison_and_its_sources(capsys):
    assert main(["capacity", "--cold-start", "--zones", "3", "--launches-per-month", "10"]) == 0
    out = capsys.readouterr().out
    assert "| option | weights read | expected start-up | $ per launch | $ per month | note |" in out
    assert "aws.amazon.com/ebs/pricing" in out and "read 2026-12-02" in out
    assert "10 launches a month, 3 zones" in out
    assert "| provisioned-rate-300 |" in out and "| fast-snapshot-restore |" in out


def test_cli_json_and_price_override(capsys, tmp_path: Path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("cold_start:\n  snapshot_gib: 60\n")
    assert main(["capacity", "--cold-start", "--json", "--prices", str(prices)]) == 0
    data = json.loads(capsys.readouterr().out)
    rates = {o["name"]: o for o in data["options"]}
    assert data["prices"]["snapshot_gib"] == 60
    assert rates["provisioned-rate-300"]["weights_read_seconds"] == math.ceil(60 * 1024 / 300)


def test_cli_unknown_instance_exits_2(capsys):
    assert main(["capacity", "--cold-start", "--instance", "p5.48xlarge"]) == 2
    captured = capsys.readouterr()
    assert "--instance: p5.48xlarge not in the price table" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--zones", "0"], "--zones"), (["--launches-per-month", "-1"], "--launches-per-month")],
)
def test_cli_malformed_numbers_exit_2_naming_the_flag(capsys, argv: list[str], flag: str):
    with pytest.raises(SystemExit) as exit_:
        main(["capacity", "--cold-start", *argv])
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_bad_cold_start_price_is_refused(capsys, tmp_path: Path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("cold_start:\n  gp3_throughput_mib_s: 0\n")
    assert main(["capacity", "--cold-start", "--prices", str(prices)]) == 2
    assert "cold_start.gp3_throughput_mib_s" in capsys.readouterr().err
