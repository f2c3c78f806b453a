"""The preflight's reading of cdk.json agrees with the CDK app's, and its bootstrap minimum with
what the synthesized stacks demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synapscribe_cdk.application import default_context
from synapscribe_cdk.config import ENVIRONMENTS_KEY, load_environment
from synapscribe_ops.preflight import MIN_BOOTSTRAP_VERSION, load_settings
from synth_support import Synthesized

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize(
    "zones",
    [
        None,
        ["us-west-1b", "us-west-1c"],
        {"us-west-1": ["us-west-1c", "us-west-1b"]},
        {"eu-west-1": ["eu-west-1a", "eu-west-1c"]},
    ],
)
def test_preflight_checks_the_zones_the_network_stack_uses(
    env: str, zones: list[str] | dict[str, list[str]] | None, tmp_path
) -> None:
    doc = json.loads(CDK_JSON.read_text(encoding="utf-8"))
    if zones is not None:
        doc["context"][ENVIRONMENTS_KEY][env]["availability_zones"] = zones
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(doc))
    region = "us-west-1"
    cdk = load_environment(doc["context"][ENVIRONMENTS_KEY], env)
    ours = load_settings(path, env)
    assert ours.zones_in(region) == cdk.zones_in(region)
    assert ours.configured_zones(region) == cdk.configured_zones(region)
    assert ours.instance_types == cdk.instance_types
    assert ours.capacity.max == cdk.capacity.max
    assert ours.cors_allowed_origins == cdk.cors_allowed_origins
    assert ours.production == (cdk.removal == "retain")


def test_default_env_is_the_apps() -> None:
    assert load_settings(CDK_JSON, None).name == default_context()["env"]


def test_bootstrap_minimum_is_what_the_stacks_demand(synth: Synthesized) -> None:
    for name, template in synth.templates.items():
        rule = template["Rules"]["CheckBootstrapVersion"]["Assertions"][0]["Assert"]
        rejected = rule["Fn::Not"][0]["Fn::Contains"][0]
        assert [int(v) for v in rejected] == list(range(1, MIN_BOOTSTRAP_VERSION)), name
    manifest = json.loads((synth.outdir / "manifest.json").read_text(encoding="utf-8"))
    demanded = [
        a["properties"]["requiresBootstrapStackVersion"]
        for a in manifest["artifacts"].values()
        if "requiresBootstrapStackVersion" in a.get("properties", {})
    ]
    assert demanded and max(demanded) <= MIN_BOOTSTRAP_VERSION


def test_reserved_concurrency_preflight_counts_is_what_the_stacks_reserve(synth: Synthesized) -> None:
    """The lambda-concurrency check counts every function that reserves concurrency in the
    synthesized (dev) templates, the sweeper's fixed 1 included."""
    reserved = [
        int(resource["Properties"]["ReservedConcurrentExecutions"])
        for template in synth.templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and "ReservedConcurrentExecutions" in resource.get("Properties", {})
    ]
    assert len(reserved) == 3, reserved
    assert sum(reserved) == load_settings(CDK_JSON, default_context()["env"]).reserved_total
