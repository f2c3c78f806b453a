"""The real `cdk synth` (npm aws-cdk CLI) of the prod environment, offline, with fake credentials
(the session fixture `prod_assembly` in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

STACKS = ("Data", "Network", "Api", "Identity", "Compute", "PageHosting", "PageContent")


def test_cloud_assembly_has_every_stack(prod_assembly: Path) -> None:
    manifest = json.loads((prod_assembly / "manifest.json").read_text())
    stacks = {k: a for k, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"}
    account = {"SynapScribe-Account", "SynapScribe-ImagePipeline"}
    assert set(stacks) == {f"SynapScribe-prod-{s}" for s in STACKS} | account
    for artifact in stacks.values():
        assert artifact["environment"] == "aws://123456789012/eu-west-1"
        template = json.loads((prod_assembly / artifact["properties"]["templateFile"]).read_text())
        assert template["Resources"]
    assert not manifest.get("missing"), "no context lookups: synth works without AWS"
    deps = stacks["SynapScribe-prod-Compute"].get("dependencies", [])
    assert {"SynapScribe-prod-Data", "SynapScribe-prod-Network", "SynapScribe-prod-Api"} <= set(deps)


def test_prod_keeps_its_data(prod_assembly: Path) -> None:
    template = json.loads((prod_assembly / "SynapScribe-prod-Data.template.json").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket"):
            assert resource["DeletionPolicy"] == "Retain"
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert resource["Properties"]["DeletionProtectionEnabled"] is True


def test_prod_buckets_do_not_empty_themselves(prod_assembly: Path) -> None:
    for name in ("Data", "Network"):
        template = json.loads((prod_assembly / f"SynapScribe-prod-{name}.template.json").read_text())
        kinds = {r["Type"] for r in template["Resources"].values()}
        assert "Custom::S3AutoDeleteObjects" not in kinds, name
        assert "AWS::S3::Bucket" in kinds


def test_validation_report_is_clean(prod_assembly: Path) -> None:
    report = json.loads((prod_assembly / "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []


def test_lambda_assets_are_in_the_assembly(prod_assembly: Path) -> None:
    assets = [p for p in prod_assembly.glob("asset.*") if p.is_dir()]
    # One asset per edge handler (its own import closure, bundling.import_closure), none with a tool.
    bundles = [a for a in assets if (a / "synapscribe" / "edge").is_dir()]
    assert len(bundles) == 3
    assert not [
        a for a in bundles for tool in ("synapscribe_ops", "synapscribe_local") if (a / tool).exists()
    ]
    assert any((a / "drain_instance.py").is_file() for a in assets)
