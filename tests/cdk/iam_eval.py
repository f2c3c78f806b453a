"""A small IAM evaluator for the CDK tests: what a principal may do, from its policies.

It follows AWS's documented evaluation logic for one account (IAM User Guide, "Policy evaluation
logic" and "Session policies"): an explicit Deny in any policy wins; otherwise a request is allowed
only when every policy type in force allows it, so a session policy bounds the role's policies
(the effective permission is their intersection). Wildcards (IAM JSON policy elements Action and
Resource): `*` matches any run of characters and `?` one; actions compare case-insensitively,
resources case-sensitively. Conditions, NotAction and NotResource are refused rather than
guessed, so a policy that uses them cannot slip through a test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

Decision = Literal["Allow", "Deny", "NotApplicable"]


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return re.fullmatch(regex, value, flags) is not None


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    unsupported = {"NotAction", "NotResource", "Condition", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"the test evaluator does not interpret {sorted(unsupported)}: {statement}")
    return any(wildcard_match(a, action, case_sensitive=False) for a in _listed(statement["Action"])) and any(
        wildcard_match(r, resource, case_sensitive=True) for r in _listed(statement["Resource"])
    )


def decide(document: dict[str, Any], action: str, resource: str) -> Decision:
    """One policy document's answer: an explicit Deny, an Allow, or nothing that applies."""
    effects = {s["Effect"] for s in document["Statement"] if _applies(s, action, resource)}
    if "Deny" in effects:
        return "Deny"
    return "Allow" if "Allow" in effects else "NotApplicable"


def allowed(policy_sets: Iterable[list[dict[str, Any]]], action: str, resource: str) -> bool:
    """Whether the request is allowed when each set of documents (one policy type, e.g. the role's
    identity-based policies, or the session policy) must allow it and none may deny it."""
    verdicts = []
    for documents in policy_sets:
        decisions = {decide(d, action, resource) for d in documents}
        if "Deny" in decisions:
            return False
        verdicts.append("Allow" in decisions)
    return bool(verdicts) and all(verdicts)


PSEUDO = {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix"}


def resolve(node: Any, pseudo: dict[str, str], reference: Callable[[Any], str]) -> Any:
    """A CloudFormation value with its intrinsics evaluated: pseudo parameters from `pseudo`,
    every other reference (Ref, GetAtt, ImportValue, GetStackOutput) through `reference`."""
    if isinstance(node, list):
        return [resolve(n, pseudo, reference) for n in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Join" in node:
        delimiter, items = node["Fn::Join"]
        return delimiter.join(str(resolve(i, pseudo, reference)) for i in items)
    if set(node) == {"Ref"} and node["Ref"] in PSEUDO:
        return pseudo[node["Ref"]]
    if len(node) == 1 and next(iter(node)) in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::GetStackOutput"):
        return reference(node)
    return {k: resolve(v, pseudo, reference) for k, v in node.items()}
