"""`synapscribe bench synth` times a real offline synth and rejects bad flags."""

from __future__ import annotations

import re
import subprocess
import sys

from synth_support import REPO, cdk_env

SYNAPSCRIBE = [sys.executable, "-m", "synapscribe.cli"]


def test_prints_the_synth_seconds() -> None:
    result = subprocess.run(
        [*SYNAPSCRIBE, "bench", "synth", "--via", "app"],
        cwd=REPO,
        env=cdk_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"synth 1/1 \(app, env=dev\): \d+\.\d s, 9 stacks", result.stdout), result.stdout
    assert re.search(r"synth seconds: median \d+\.\d", result.stdout)


def test_bad_flags_exit_2_naming_the_flag() -> None:
    for args, flag in ((["--runs", "0"], "--runs"), (["--via", "docker"], "--via")):
        result = subprocess.run(
            [*SYNAPSCRIBE, "bench", "synth", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert result.returncode == 2
        assert flag in result.stderr


def test_unknown_environment_fails_with_the_reason() -> None:
    result = subprocess.run(
        [*SYNAPSCRIBE, "bench", "synth", "--via", "app", "--env", "staging"],
        cwd=REPO,
        env=cdk_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "expected one of dev, prod" in result.stderr
