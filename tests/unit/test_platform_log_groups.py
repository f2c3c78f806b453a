"""platform.yaml's fleet.log_groups: name templates holding the environment, so environments that
share an account never write to (or try to create) the same group, while one AMI serves them all."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from synapscribe.cli import main
from synapscribe.platform import ENV_PLACEHOLDER, PlatformConfigError, load_platform, parse_platform

KEYS = ("vllm", "tts", "agentcore", "metrics")


def _with_groups(**changes: str) -> dict[str, Any]:
    data = load_platform().model_dump()
    data["fleet"]["log_groups"].update(changes)
    return data


def test_every_group_is_a_template_of_the_environment() -> None:
    groups = load_platform().fleet.log_groups
    for key in KEYS:
        assert getattr(groups, key).count(ENV_PLACEHOLDER) == 1, key


def test_dev_and_prod_get_disjoint_valid_names() -> None:
    groups = load_platform().fleet.log_groups
    dev, prod = groups.names("dev"), groups.names("prod")
    assert set(dev) == set(prod) == set(KEYS)
    assert not set(dev.values()) & set(prod.values())
    for name in (*dev.values(), *prod.values()):
        # CreateLogGroup's logGroupName: 1-512 of [.-_/#A-Za-z0-9] (CloudWatch Logs API Reference).
        assert re.fullmatch(r"[.\-_/#A-Za-z0-9]{1,512}", name), name
    assert dev["metrics"] == groups.metrics.replace(ENV_PLACEHOLDER, "dev")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        # A fixed name: every environment would share it (the issue this template solves).
        (
            {"vllm": "/synapscribe/gpu/vllm"},
            "fleet.log_groups.vllm: Value error, '/synapscribe/gpu/vllm' must contain {env} exactly once",
        ),
        (
            {"tts": "/synapscribe/{env}/{env}/tts"},
            "fleet.log_groups.tts: Value error, '/synapscribe/{env}/{env}/tts' must contain {env} exactly once",
        ),
        (
            {"agentcore": "/synapscribe/{env}/{region}"},
            "must contain {env} exactly once (and no other braces)",
        ),
        ({"metrics": "synapscribe/{env}/metrics"}, "fleet.log_groups.metrics: String should match pattern"),
        ({"metrics": "/synapscribe/{env}/m etrics"}, "fleet.log_groups.metrics: String should match pattern"),
        ({"metrics": "/synapscribe/{env}/gpu/vllm"}, "each unit needs its own group"),
    ],
)
def test_a_bad_template_is_refused_with_its_name(changes: dict[str, str], problem: str) -> None:
    with pytest.raises(PlatformConfigError, match=re.escape(problem)):
        parse_platform(_with_groups(**changes))


@pytest.mark.parametrize("environment", ["", "dev/prod", "a b", "{env}", "d#v", "e" * 65])
def test_names_refuse_an_environment_no_log_group_name_can_hold(environment: str) -> None:
    with pytest.raises(ValueError, match="environment"):
        load_platform().fleet.log_groups.names(environment)


def test_names_refuse_a_name_longer_than_cloudwatch_allows() -> None:
    groups = parse_platform(_with_groups(vllm="/" + "v" * 500 + "/{env}")).fleet.log_groups
    assert len(groups.names("dev")["vllm"]) == 505
    with pytest.raises(ValueError, match="longer than CloudWatch Logs allows"):
        groups.names("e" * 20)


def test_the_cli_prints_an_environments_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platform", "--log-groups", "dev", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == load_platform().fleet.log_groups.names("dev")
    assert main(["platform", "--log-groups", "dev/prod"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "synapscribe platform: --log-groups: environment 'dev/prod'" in captured.err


def test_the_guide_shows_devs_names_as_the_platform_makes_them() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operators-guide.md").read_text()
    dev = load_platform().fleet.log_groups.names("dev")
    assert f"--log-group-name {dev['metrics']} --filter-pattern HostStartupSeconds" in guide
    assert f"--log-group-name {dev['agentcore']} " in guide
    assert "synapscribe platform --log-groups dev\n" in guide
