"""Stacks share values without CloudFormation exports: an export blocks every update that would
replace or change the exported value (a table, the API, the target group, a subnet, a security
group) while another stack imports it. The app reads other stacks' outputs by name at deploy
time (Fn::GetStackOutput, CDK's weak cross-stack references) and keeps the deploy order as stack
dependencies."""

from __future__ import annotations

import json
from typing import Any

from synth_support import REPO, Synthesized


def _intrinsics(node: Any, name: str) -> list[Any]:
    if isinstance(node, dict):
        found = [node[name]] if name in node else []
        return found + [x for v in node.values() for x in _intrinsics(v, name)]
    if isinstance(node, list):
        return [x for v in node for x in _intrinsics(v, name)]
    return []


def test_no_exports_and_no_imports(synth: Synthesized) -> None:
    for name, template in synth.templates.items():
        assert not [k for k, o in template.get("Outputs", {}).items() if "Export" in o], name
        assert not _intrinsics(template, "Fn::ImportValue"), name


def test_shared_values_are_read_from_the_producers_outputs(synth: Synthesized) -> None:
    stacks = {s.stack_name: key for key, s in synth.platform.stacks_by_key().items()}
    consumers = {
        "api": {"data", "network"},
        "compute": {"data", "network", "api"},
        "identity": {"api"},
        # The lecture bucket's CORS names the page's origin; the page's files go to its bucket,
        # its config.json names the WebSocket URL and the identity pool, and its index.html's
        # policy the WebSocket URL and the lecture bucket.
        "data": {"page_hosting"},
        "page_content": {"page_hosting", "api", "identity", "data"},
    }
    for consumer, producers in consumers.items():
        references = _intrinsics(synth.templates[consumer], "Fn::GetStackOutput")
        read_from = {stacks[r["StackName"]] for r in references}
        assert read_from == producers, consumer
        for reference in references:
            producer = synth.templates[stacks[reference["StackName"]]]
            assert reference["OutputName"] in producer["Outputs"], reference
        dependencies = {stacks[d.stack_name] for d in synth.platform.stacks_by_key()[consumer].dependencies}
        assert producers <= dependencies, consumer


def test_cdk_json_asks_for_weak_references() -> None:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert context["@aws-cdk/core:defaultCrossStackReferences"] == "weak"
