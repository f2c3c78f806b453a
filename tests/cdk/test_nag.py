"""cdk-nag AwsSolutions runs on every stack; nothing is left unacknowledged, every
acknowledgement is scoped and has a reason."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from synapscribe_cdk import nag
from synth_support import Synthesized


def test_report_has_no_violations(synth: Synthesized) -> None:
    """Neither cdk-nag nor CDK's own CloudFormation checks leave an error or a warning."""
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    violations = [
        (v["ruleName"], v["severity"], [c["constructPath"] for c in v["violatingConstructs"]])
        for plugin in report["pluginReports"]
        for v in plugin.get("violations", [])
    ]
    assert violations == []


def test_nag_ran_over_every_stack(synth: Synthesized) -> None:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    (nag_report,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert nag_report["conclusion"] == "success"
    suppressed_in = {
        c["constructPath"].split("/")[0]
        for v in nag_report["suppressedViolations"]
        for c in v["violatingConstructs"]
    }
    # Every stack has an acknowledged finding, so the checks visited them (Data's are its budget
    # action's function; its buckets' findings are fixed: test_checks_catch_an_insecure_bucket).
    stacks = {s.stack_name for s in synth.platform.stacks()}
    assert suppressed_in == stacks


def test_every_acknowledgement_is_needed(synth: Synthesized) -> None:
    """No stale acknowledgement: each one suppresses a finding on its own construct's subtree."""
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    used = {
        (v["acknowledgedAt"], v["acknowledgedId"])
        for p in report["pluginReports"]
        for v in p.get("suppressedViolations", [])
    }
    ours = {(path, rule) for path, rule, _ in _acknowledgements(synth) if rule.startswith("AwsSolutions::")}
    assert ours - used == set()


def _acknowledgements(synth: Synthesized) -> list[tuple[str, str, str]]:
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found = []
    for stack in synth.platform.stacks():
        for node in stack.node.find_all():
            for entry in node.node.metadata:
                if entry.type == key:
                    # {"<plugin>::<rule>": reason}, e.g. "AwsSolutions::AwsSolutions-S1"
                    for rule, reason in dict(entry.data).items():
                        found.append((node.node.path, rule, reason))
    return found


def test_acknowledgements_are_scoped_and_explained(synth: Synthesized) -> None:
    everything = _acknowledgements(synth)
    acks = [a for a in everything if a[1].startswith("AwsSolutions::")]
    assert acks, "the app acknowledges some findings (e.g. the access-log bucket's own logging)"
    # The only others: CDK's template validation of the VPC constructs. (No desired-capacity
    # annotation: the group's template leaves desired capacity out.)
    others = {
        (path.split("/", 1)[-1], rule)
        for path, rule, _ in everything
        if not rule.startswith("AwsSolutions::")
    }
    for path, rule in others:
        assert rule.startswith("CloudFormation-Validate::"), (path, rule)
    stack_paths = {s.node.path for s in synth.platform.stacks()}
    for path, rule, reason in acks:
        assert rule.startswith("AwsSolutions::AwsSolutions-"), (path, rule)
        assert len(reason) >= 20, (path, rule, reason)
        assert path not in stack_paths and "/" in path, f"{rule} acknowledged for a whole stack ({path})"


def test_checks_catch_an_insecure_bucket(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    s3.Bucket(Stack(app, "Insecure"), "Bucket")
    nag.add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_acknowledge_refuses_vague_reasons() -> None:
    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match="must say why"):
        nag.acknowledge(stack, "AwsSolutions-S1", "because")
    with pytest.raises(ValueError, match="not an AwsSolutions rule"):
        nag.acknowledge(stack, "S1", "a sufficiently long reason here")
