"""cdk-nag (AwsSolutions) through CDK's policy validation, and scoped acknowledgements.

cdk-nag 3 runs as a validation plugin (`Validations.of(app).add_plugins(...)`), not an Aspect.
Every acknowledgement names one rule on one construct (and its children) and says why.
Granular rules (IAM4, IAM5) report one finding per managed policy or wildcard resource, and an
acknowledgement must name the exact finding (`AwsSolutions-IAM5[Resource::…]`); the helpers
below compute those strings the way cdk-nag renders them, so each wildcard is accepted one by
one and a new, unexpected wildcard still fails the synth.

AWS's other linters run on the synthesized templates (tests/cdk/test_cfn_linters.py) and read
their acknowledgements from the resource's CloudFormation `Metadata`: cfn-lint from
`cfn-lint.config.ignore_checks` (it has no field for a reason: ours goes beside it in
`cfn-lint.reasons`), checkov from `checkov.skip: [{id, comment}]` (checkov's
cloudformation/context_parser.py, `collect_skip_comments`). The helpers below write both, so every
"why this finding stays" is in this module's callers, as for cdk-nag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PLUGIN = "AwsSolutions"
MANAGED_POLICY_PREFIX = "Policy::arn:<AWS::Partition>:iam::aws:policy/"


#: checkov's findings on CDK's own custom-resource helper functions (bucket notifications,
#: auto-delete-objects, default security group): CDK writes them, no construct of ours does.
HELPER_FUNCTION_FINDINGS = {
    "CKV_AWS_115": "CDK's custom-resource helper runs only while CloudFormation deploys the stack; "
    "reserving concurrency for it would take it from the account's pool all year.",
    "CKV_AWS_116": "CloudFormation sends CDK's custom-resource helper its request and waits for "
    "the reply; a failure fails the deployment, so there is no event to keep for later.",
    "CKV_AWS_117": "CDK's custom-resource helper calls only AWS APIs (S3, EC2) while the stack "
    "deploys; it needs nothing in the VPC.",
}
HELPER_FUNCTION_W3005 = (
    "CDK declares DependsOn the helper's role (and its retained log group) so they exist before "
    "its first invocation; the entry repeats an implicit dependency and is harmless."
)


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    # Called once every construct exists, so CDK's internals below are all there.
    acknowledge_cdk_internals(app)


def acknowledge_cdk_internals(scope: IConstruct) -> None:
    """cfn-lint's and checkov's findings on resources CDK writes itself, which no construct of
    ours carries: its custom-resource helper functions."""
    for node in scope.node.find_all():
        if (
            isinstance(node, CfnResource)
            and node.cfn_resource_type == "AWS::Lambda::Function"
            and not isinstance(node, lambda_.CfnFunction)  # the helpers are plain CfnResources
        ):
            acknowledge_cfn_lint(node, "W3005", HELPER_FUNCTION_W3005)
            for check, reason in HELPER_FUNCTION_FINDINGS.items():
                acknowledge_checkov(node, check, reason)


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


def acknowledge_checkov(construct: IConstruct, check: str, reason: str) -> None:
    """Accept checkov's `check` (e.g. "CKV_AWS_117") on `construct`'s CloudFormation resource."""
    if not check.startswith("CKV_"):
        raise ValueError(f"{check!r} is not a checkov check id")
    _check_reason(check, reason)
    resource = _cfn_resource(construct)
    metadata = dict(resource.get_metadata("checkov") or {})
    skips = [dict(s) for s in metadata.get("skip", [])]
    if any(s["id"] == check for s in skips):
        raise ValueError(f"{check} is already acknowledged on {construct.node.path}")
    metadata["skip"] = [*skips, {"id": check, "comment": reason}]
    resource.add_metadata("checkov", metadata)


def acknowledge_cfn_lint(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept cfn-lint's `rule` (a full id such as "W3005") on `construct`'s CloudFormation resource."""
    if len(rule) != 5 or rule[0] not in "EWI" or not rule[1:].isdigit():
        raise ValueError(f"{rule!r} is not a cfn-lint rule id")
    _check_reason(rule, reason)
    resource = _cfn_resource(construct)
    metadata = dict(resource.get_metadata("cfn-lint") or {})
    ignored = list(dict(metadata.get("config") or {}).get("ignore_checks", []))
    if rule in ignored:
        raise ValueError(f"{rule} is already acknowledged on {construct.node.path}")
    metadata["config"] = {"ignore_checks": [*ignored, rule]}
    metadata["reasons"] = {**dict(metadata.get("reasons") or {}), rule: reason}
    resource.add_metadata("cfn-lint", metadata)


def acknowledge_log_bucket(bucket: IConstruct) -> None:
    """checkov's findings on a bucket that only receives access logs (S3 or load balancer)."""
    acknowledge_checkov(
        bucket,
        "CKV_AWS_18",
        "This bucket receives access logs; logging its own access would log the log deliveries.",
    )
    acknowledge_checkov(
        bucket,
        "CKV_AWS_21",
        "Only the log delivery service writes here, once per object, and objects expire after the "
        "log retention; versions would keep expired logs.",
    )


def _check_reason(rule: str, reason: str) -> None:
    if len(reason.strip()) < 20:
        raise ValueError(f"the reason for {rule} must say why ({reason!r} is too short)")


def _cfn_resource(construct: IConstruct) -> CfnResource:
    """The CloudFormation resource itself, or an L2 construct's own (`node.default_child`)."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise ValueError(f"{construct.node.path} is not one CloudFormation resource")
    return resource


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
