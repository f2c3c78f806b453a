"""`synapscribe bench validation` end to end at small sizes (moto server on loopback)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from synapscribe_ops.bench import validation


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="synapscribe bench validation")
    validation.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.needs_tool("ffmpeg")
def test_bench_reports_sizes_reads_and_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_before = dict(os.environ)
    out = tmp_path / "bench.json"
    assert (
        validation.run(parse("--repeats", "2", "--small-mb", "0.2", "--large-mb", "3", "--json", str(out)))
        == 0
    )
    assert dict(os.environ) == env_before
    report = json.loads(out.read_text())
    small, large = report["lectures"]
    assert small["sizeBytes"] < 0.25 * 1024 * 1024 < 2.5 * 1024 * 1024 < large["sizeBytes"] <= 3 * 1024 * 1024
    assert small["outcome"] == large["outcome"] == "ready"  # 60 s and 110 s: audio mode
    for row in (small, large):
        assert 0 < row["bytesRead"] < 256 * 1024 and row["rangedGets"] >= 1
        assert row["totalMs"] >= row["handlerMs"] > 0
    assert report["ratio"] == pytest.approx(large["handlerMs"] / small["handlerMs"], rel=0.01)
    printed = capsys.readouterr().out
    assert "ratio large/small, handler" in printed and "goal < 1.5" in printed


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--repeats", "0"], "--repeats"),
        (["--small-mb", "x"], "--small-mb"),
        (["--large-kbps", "-1"], "--large-kbps"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.needs_tool("ffmpeg")
def test_large_over_limit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert validation.run(parse("--large-mb", "200")) == 2
    assert "--large-mb" in capsys.readouterr().err
