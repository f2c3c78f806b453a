"""`make synth` and the app honour the region the operator names, although the CDK CLI overwrites
CDK_DEFAULT_REGION with its own (AWS_REGION or the profile's, else us-east-1)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from aws_cdk import App
from synapscribe_cdk.application import target_environment
from synapscribe_cdk.config import ConfigError
from synth_support import REPO


def _region(monkeypatch: pytest.MonkeyPatch, context: dict[str, str], **env: str) -> str | None:
    for name in ("CDK_DEPLOY_REGION", "CDK_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return target_environment(App(context=context)).region


def test_context_then_deploy_region_then_the_clis_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _region(monkeypatch, {}, CDK_DEFAULT_REGION="us-east-1") == "us-east-1"
    assert (
        _region(monkeypatch, {}, CDK_DEFAULT_REGION="us-east-1", CDK_DEPLOY_REGION="ap-southeast-2")
        == "ap-southeast-2"
    )
    assert (
        _region(monkeypatch, {"region": "eu-north-1"}, CDK_DEFAULT_REGION="us-east-1", CDK_DEPLOY_REGION="x")
        == "eu-north-1"
    )
    assert _region(monkeypatch, {}) is None


def test_an_empty_region_context_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="region"):
        _region(monkeypatch, {"region": ""})


def _synth_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """What `make synth` hands the CDK CLI: its recipe runs with an `npx` that prints the env."""
    recipe = subprocess.run(
        ["make", "-s", "-n", "-o", "setup", "synth"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "npx cdk synth" in recipe
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    npx = fake / "npx"
    npx.write_text("#!/bin/sh\nenv\n")
    npx.chmod(npx.stat().st_mode | stat.S_IEXEC)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    base.update(env, PATH=f"{fake}:{os.environ['PATH']}")
    out = subprocess.run(
        ["bash", "-c", recipe], cwd=REPO, env=base, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line.startswith("CDK_"))


def test_make_synth_passes_the_named_region_as_cdk_deploy_region(tmp_path: Path) -> None:
    assert _synth_env(tmp_path, AWS_REGION="us-west-2")["CDK_DEPLOY_REGION"] == "us-west-2"
    assert (
        _synth_env(tmp_path, CDK_DEPLOY_REGION="sa-east-1", AWS_REGION="x")["CDK_DEPLOY_REGION"]
        == "sa-east-1"
    )
    assert _synth_env(tmp_path)["CDK_DEPLOY_REGION"] == "eu-west-1"
