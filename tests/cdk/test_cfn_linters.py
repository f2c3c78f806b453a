"""AWS's own linters on every synthesized template of dev and prod: cfn-lint (pinned in the dev
extra) and checkov (its own pinned environment, see cfn_linters.py). Nothing is left
unacknowledged; every acknowledgement sits on its resource, says why, and still suppresses a
finding (the same template with the acknowledgements stripped shows it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from cfn_linters import (
    AS_SYNTHESIZED,
    STRIPPED,
    Finding,
    LintRun,
    acknowledgements,
    assembly_templates,
    describe,
)
from synapscribe_cdk import nag
from synth_support import ACCOUNT, REGION, Synthesized, resources_of


def _acknowledged(lint_run: LintRun, templates: dict[str, dict[str, Any]]) -> dict[Finding, str]:
    found: dict[Finding, str] = {}
    for name in lint_run.templates:
        found.update(acknowledgements(name, templates[name]))
    return found


@pytest.fixture(scope="module")
def templates(assemblies: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return assembly_templates(assemblies)[0]


def test_every_stack_of_both_environments_is_linted(lint_run: LintRun, assemblies: dict[str, Any]) -> None:
    for env, outdir in assemblies.items():
        manifest = json.loads((outdir / "manifest.json").read_text())
        artifacts = manifest["artifacts"].values()
        stacks = {
            a["properties"]["templateFile"] for a in artifacts if a["type"] == "aws:cloudformation:stack"
        }
        assert len(stacks) >= 6, stacks  # account, data, network, api, identity, compute
        assert {f"{env}.{s}" for s in stacks} <= set(lint_run.templates)
    summary = lint_run.checkov_summary
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 100, summary  # checkov read the resources, not an empty directory


def test_cfn_lint_leaves_nothing_unacknowledged(lint_run: LintRun) -> None:
    """No error, and every warning fixed or acknowledged on its resource."""
    found = {f for f in lint_run.findings[AS_SYNTHESIZED] if f.tool == "cfn-lint"}
    assert not found, "cfn-lint findings:\n" + describe(found)


def test_checkov_fails_no_check(lint_run: LintRun) -> None:
    found = {f for f in lint_run.findings[AS_SYNTHESIZED] if f.tool == "checkov"}
    assert not found, "checkov findings:\n" + describe(found)


def test_checkov_reads_every_acknowledgement(lint_run: LintRun, templates: dict[str, dict[str, Any]]) -> None:
    """checkov reports exactly our acknowledgements as skipped: none is in a form it ignores."""
    ours = {f for f in _acknowledged(lint_run, templates) if f.tool == "checkov"}
    assert lint_run.checkov_skipped == ours, describe(lint_run.checkov_skipped ^ ours)


def test_every_acknowledgement_is_still_needed(
    lint_run: LintRun, templates: dict[str, dict[str, Any]]
) -> None:
    """Strip the acknowledgements and each one's finding returns on its own resource."""
    acknowledged = _acknowledged(lint_run, templates)
    # Guest access (CKV_AWS_366) is the product, so both tools' acknowledgements are exercised.
    assert {f.tool for f in acknowledged} == {"cfn-lint", "checkov"}
    stale = set(acknowledged) - lint_run.findings[STRIPPED]
    assert not stale, "acknowledged, but the linter finds nothing there:\n" + describe(stale)


def test_every_acknowledgement_says_why(lint_run: LintRun, templates: dict[str, dict[str, Any]]) -> None:
    for finding, reason in _acknowledged(lint_run, templates).items():
        assert len(reason.strip()) >= 20, (finding, reason)
        assert finding.resource, finding  # on a resource, never a whole template


def test_acknowledgements_are_written_where_the_linters_read_them() -> None:
    stack = Stack(App(), "S")
    queue = sqs.Queue(stack, "Queue")
    nag.acknowledge_checkov(queue, "CKV_AWS_27", "an example reason that is long enough")
    nag.acknowledge_checkov(queue, "CKV_AWS_115", "a second example reason, long enough")
    nag.acknowledge_cfn_lint(queue, "W3005", "a third example reason that is long enough")
    (metadata,) = [r["Metadata"] for r in Template.from_stack(stack).to_json()["Resources"].values()]
    assert metadata["checkov"] == {
        "skip": [
            {"id": "CKV_AWS_27", "comment": "an example reason that is long enough"},
            {"id": "CKV_AWS_115", "comment": "a second example reason, long enough"},
        ]
    }
    assert metadata["cfn-lint"] == {
        "config": {"ignore_checks": ["W3005"]},
        "reasons": {"W3005": "a third example reason that is long enough"},
    }


@pytest.mark.parametrize(
    ("helper", "check", "reason", "message"),
    [
        (
            nag.acknowledge_checkov,
            "AwsSolutions-S1",
            "a sufficiently long reason here",
            "not a checkov check",
        ),
        (nag.acknowledge_checkov, "CKV_AWS_27", "because", "must say why"),
        (nag.acknowledge_cfn_lint, "W30", "a sufficiently long reason here", "not a cfn-lint rule"),
        (nag.acknowledge_cfn_lint, "W3005", "   ", "must say why"),
    ],
)
def test_acknowledge_refuses_vague_or_unknown(helper: Any, check: str, reason: str, message: str) -> None:
    queue = sqs.Queue(Stack(App(), "S"), "Queue")
    with pytest.raises(ValueError, match=message):
        helper(queue, check, reason)


def test_acknowledge_refuses_a_construct_of_many_resources() -> None:
    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match="not one CloudFormation resource"):
        nag.acknowledge_checkov(stack, "CKV_AWS_27", "a sufficiently long reason here")


def test_log_groups_use_their_stacks_key_which_admits_the_logs_service(synth: Synthesized) -> None:
    """checkov's CKV_AWS_158 fixed, not acknowledged. CloudWatch Logs encrypts with a key only when
    the key policy admits `logs.<region>.amazonaws.com` for this account's log groups (CloudWatch
    Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS"): otherwise creating the
    log group fails."""
    groups = 0
    for name, template in synth.templates.items():
        keys = resources_of(template, "AWS::KMS::Key")
        for group in resources_of(template, "AWS::Logs::LogGroup").values():
            groups += 1
            key_id, attribute = group["Properties"]["KmsKeyId"]["Fn::GetAtt"]
            assert attribute == "Arn" and key_id in keys, (name, group)
            key = keys[key_id]["Properties"]
            assert key["EnableKeyRotation"] is True
            (logs,) = [
                s
                for s in key["KeyPolicy"]["Statement"]
                if s["Principal"].get("Service") == f"logs.{REGION}.amazonaws.com"
            ]
            assert set(logs["Action"]) >= {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"}
            condition = json.dumps(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
            assert f":logs:{REGION}:{ACCOUNT}:log-group:*" in condition, condition
    assert groups >= 5  # the functions', the stage's access logs, the VPC's flow logs
