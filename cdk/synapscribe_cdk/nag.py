"""cdk-nag (AwsSolutions) through CDK's policy validation, and scoped acknowledgements.

cdk-nag 3 runs as a validation plugin (`Validations.of(app).add_plugins(...)`), not an Aspect.
Every acknowledgement names one rule on one construct (and its children) and says why.
Granular rules (IAM4, IAM5) report one finding per managed policy or wildcard resource, and an
acknowledgement must name the exact finding (`AwsSolutions-IAM5[Resource::…]`); the helpers
below compute those strings the way cdk-nag renders them, so each wildcard is accepted one by
one and a new, unexpected wildcard still fails the synth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PLUGIN = "AwsSolutions"
MANAGED_POLICY_PREFIX = "Policy::arn:<AWS::Partition>:iam::aws:policy/"


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Accept `rule` (e.g. "AwsSolutions-L1") on `construct` only, for `reason`; for a granular
    rule, only the listed findings (e.g. "Resource::*")."""
    if not rule.startswith(f"{PLUGIN}-"):
        raise ValueError(f"{rule!r} is not an {PLUGIN} rule id")
    if len(reason) < 20:
        raise ValueError(f"the reason for {rule} must say why ({reason!r} is too short)")
    ids = [f"{rule}[{f}]" for f in findings] or [rule]
    for rule_id in ids:
        # "<plugin>::<rule>" is the id the validation report asks for; a bare id means an annotation.
        Validations.of(construct).acknowledge(Acknowledgment(id=f"{PLUGIN}::{rule_id}", reason=reason))


def managed_policy_findings(*names: str) -> list[str]:
    """IAM4 findings for AWS managed policies, e.g. "service-role/AWSLambdaBasicExecutionRole"."""
    return [MANAGED_POLICY_PREFIX + name for name in names]


def wildcard_findings(scope: IConstruct, resources: Iterable[str]) -> list[str]:
    """IAM5 findings (`Resource::…`) for the wildcard resources among `resources`.

    Only valid for values that do not change at synthesis: literals, same-stack references and
    explicit `Fn.get_stack_output` (CDK's automatic cross-stack references are rewritten later).
    """
    stack = Stack.of(scope)
    findings = []
    for resource in resources:
        flat = flatten_reference(stack.resolve(resource))
        if "*" in flat:
            findings.append(f"Resource::{flat}")
    return findings


def flatten_reference(node: Any) -> str:
    """cdk-nag's flattenCfnReference: an intrinsic as a flat string (`<Logical.Attr>`, `<Ref>`)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(i) for i in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
        # cdk-nag's fallback (e.g. Fn::GetStackOutput): JavaScript's compact JSON.stringify.
        return json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    raise ValueError(f"cannot flatten {node!r} the way cdk-nag does")
