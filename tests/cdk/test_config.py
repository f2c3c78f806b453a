"""Environment settings from the CDK context: typed, validated, with errors that name the key."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from synapscribe_cdk.application import default_context
from synapscribe_cdk.config import ENVIRONMENTS_KEY, ConfigError, load_environment
from synth_support import REPO, cdk_env


def _envs() -> dict[str, Any]:
    return copy.deepcopy(default_context()[ENVIRONMENTS_KEY])


def test_cdk_json_environments_are_valid() -> None:
    for name in ("dev", "prod"):
        config = load_environment(_envs(), name)
        assert config.name == name
        assert config.instance_types[0] == "g5.2xlarge"
    assert load_environment(_envs(), "prod").removal == "retain"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("capacity", "min"), 5, "min <= desired <= max"),
        (("instance_types",), ["g4dn.xlarge"], "g4dn.xlarge: not a single-24-GB-GPU instance type"),
        (("log_retention_days",), 10, "10 is not a CloudWatch Logs retention period"),
        (("cors_allowed_origins",), ["http://evil.example"], "must be https://"),
        (("capacity", "night_scale_in_cron"), "every night", "capacity.night_scale_in_cron"),
        (("drain_seconds",), 5, "drain_seconds"),
        (("capacity", "night_max"), 3, "must not exceed max"),
        (("monthly_budget_usd",), 0, "monthly_budget_usd"),
        (("cost_alarms", "bucket_gib"), 0, "cost_alarms.bucket_gib"),
        (("surprise",), 1, "surprise"),
        (("route_throttles", "getLectures"), {"rate_limit": 1, "burst_limit": 1}, "getLectures: not a route"),
        (("route_throttles", "query", "rate_limit"), 1000, "route_throttles.query must not exceed"),
        (("reserved_concurrency", "validation"), 0, "reserved_concurrency.validation"),
        (("reserved_concurrency",), None, "reserved_concurrency"),
        (("egress",), "none", "egress"),
        # AWS accepts 100-300 MiB/s (Amazon EBS User Guide, "Initialize Amazon EBS volumes").
        (("root_volume_initialization_mib_per_second",), 99, "root_volume_initialization_mib_per_second"),
        (("root_volume_initialization_mib_per_second",), 301, "root_volume_initialization_mib_per_second"),
        (("scaling", "scale_out_cooldown_seconds"), 120, "below platform.yaml's fleet.host_startup_seconds"),
    ],
)
def test_bad_settings_name_the_key(path: tuple[str, ...], value: Any, message: str) -> None:
    envs = _envs()
    target = envs["dev"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")) as err:
        load_environment(envs, "dev")
    assert str(err.value).startswith(f"{ENVIRONMENTS_KEY}.dev:")


def test_production_needs_an_alarm_address() -> None:
    """Synth refuses a production environment (removal: retain) that nobody hears; dev may go
    without (preflight warns)."""
    envs = _envs()
    assert load_environment(envs, "prod").alarm_email == envs["prod"]["alarm_email"]
    envs["prod"]["alarm_email"] = None
    with pytest.raises(ConfigError, match=r"alarm_email: a production environment .* needs an address"):
        load_environment(envs, "prod")
    del envs["prod"]["alarm_email"]
    with pytest.raises(ConfigError, match=r"set alarm_email in cdk\.json"):
        load_environment(envs, "prod")
    assert load_environment(_envs(), "dev").alarm_email is None
    envs["dev"]["alarm_email"] = "not an address"
    with pytest.raises(ConfigError, match="alarm_email"):
        load_environment(envs, "dev")


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="expected one of dev, prod"):
        load_environment(_envs(), "staging")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_environment(None, "dev")


def test_zones_default_to_the_region_and_can_be_listed() -> None:
    config = load_environment(_envs(), "dev")
    assert config.zones_in("eu-west-1") == ["eu-west-1a", "eu-west-1b"]
    envs = _envs()
    envs["dev"]["availability_zones"] = ["us-west-1b", "us-west-1c"]
    assert load_environment(envs, "dev").zones_in("us-west-1") == ["us-west-1b", "us-west-1c"]
    with pytest.raises(ConfigError, match="us-west-1b, us-west-1c are not in eu-west-1"):
        load_environment(envs, "dev").zones_in("eu-west-1")


def test_zones_per_region_and_from_the_command_line() -> None:
    envs = _envs()
    envs["dev"]["availability_zones"] = {"us-west-1": ["us-west-1b", "us-west-1c"]}
    config = load_environment(envs, "dev")
    assert config.zones_in("us-west-1") == ["us-west-1b", "us-west-1c"]
    # A region the map does not list keeps the default letters.
    assert config.zones_in("eu-west-1") == ["eu-west-1a", "eu-west-1b"]
    # `-c zones=` (a string from the CLI) wins over cdk.json, in the region it names.
    cli = load_environment(envs, "dev", "eu-west-1c, eu-west-1b")
    assert cli.zones_in("eu-west-1") == ["eu-west-1c", "eu-west-1b"]
    assert (
        load_environment(envs, "dev", ["eu-west-1a", "eu-west-1c"]).zones_in("eu-west-1")[1] == "eu-west-1c"
    )


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ("eu-west-1a", "at least two distinct zones"),
        ("eu-west-1a,eu-west-1a", "at least two distinct zones"),
        ("eu-west-1a,eu-west-1", "eu-west-1: not an availability zone name"),
        ("eu-west-1a,us-west-2-lax-1a", "us-west-2-lax-1a: not an availability zone name"),
        (7, "must name zones like"),
    ],
)
def test_bad_zones_on_the_command_line_are_refused(zones: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_environment(_envs(), "dev", zones)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"eu-west-1": ["eu-west-1a"]}, "at least two distinct zones"),
        ({"Europe": ["eu-west-1a", "eu-west-1b"]}, "availability_zones"),
        (["eu-west-1a", "eu-west-1a"], "at least two distinct zones"),
    ],
)
def test_bad_zones_in_cdk_json_are_refused(value: object, message: str) -> None:
    envs = _envs()
    envs["dev"]["availability_zones"] = value
    with pytest.raises(ConfigError, match=message):
        load_environment(envs, "dev")


def test_app_without_a_region_says_which_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in cdk_env().items() if not k.startswith("CDK_")}
    env["CDK_OUTDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "cdk" / "app.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "set CDK_DEPLOY_REGION" in result.stderr


def test_scaling_block_is_typed_by_the_simulators_settings():
    from synapscribe.scaling import ScalingSettings

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    envs = context["synapscribe:environments"]
    for name in envs:
        assert isinstance(load_environment(envs, name).scaling, ScalingSettings)
    bad = {"dev": {**envs["dev"], "scaling": {**envs["dev"]["scaling"], "target_in_flight_per_instance": 0}}}
    with pytest.raises(ConfigError, match="target_in_flight_per_instance"):
        load_environment(bad, "dev")


def test_scale_out_cooldowns_cover_the_expected_host_startup() -> None:
    """The one start-up figure (platform.yaml fleet.host_startup_seconds) bounds cdk.json's scale-out cooldowns."""
    from synapscribe.platform import load_platform

    startup = load_platform().fleet.host_startup_seconds
    for name in ("dev", "prod"):
        scaling = load_environment(_envs(), name).scaling
        assert scaling is not None and scaling.scale_out_cooldown_seconds >= startup, name
