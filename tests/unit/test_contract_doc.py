"""docs/contract.md is the contract's models rendered: the committed file is what the generator
prints, it covers every action, message, field and code, and no document points outside the
repository (the contract used to live in a sibling folder a fresh clone does not have)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe import contract
from synapscribe.cli import main
from synapscribe.contract.actions import _Action
from synapscribe_ops import contract_doc

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "contract.md"
REGENERATE = "make contract-doc (or: synapscribe contract --markdown > docs/contract.md)"


def test_the_committed_document_is_what_the_models_render() -> None:
    assert DOC.read_text() == contract_doc.render(), f"docs/contract.md is stale: run {REGENERATE}"


def test_the_cli_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract", "--markdown"]) == 0
    assert capsys.readouterr().out == contract_doc.render()


def test_the_schema_is_still_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"clientToServer", "serverToClient"}


def test_the_generator_is_deterministic_across_processes() -> None:
    """Another process with another hash seed, time zone and locale prints the same bytes (the
    lead regenerates the file at merge time; a diff must only ever come from the models)."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "TZ": "Pacific/Auckland",
        "LC_ALL": "C",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "contract", "--markdown"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert out == contract_doc.render()


def test_a_changed_model_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """The freshness check can fail: a model's words are the document's words."""
    before = contract_doc.render()
    monkeypatch.setattr(contract.EndSession, "__doc__", "End a session and forget it.")
    after = contract_doc.render()
    assert after != before
    assert "End a session and forget it." in after


def test_every_action_message_field_and_code_is_in_the_document() -> None:
    doc = contract_doc.render()
    models = contract_doc.members(contract.ClientMessage) + contract_doc.members(contract.ServerMessage)
    assert [contract_doc.message_name(m) for m in contract_doc.members(contract.ClientMessage)] == list(
        contract.ACTIONS
    )
    for model in models:
        name = contract_doc.message_name(model)
        section = doc.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]
        for field in model.model_fields:
            if field not in ("action", "type"):
                assert f"| `{field}` |" in section, f"{name}.{field} is not in its section"
    for code in contract.ErrorCode:
        assert f"| `{code.value}` |" in doc
    for rule in contract.ORDER_RULES:
        assert " ".join(rule.split()) in doc


def test_every_message_and_code_is_described_and_has_an_example() -> None:
    """A message, field or code added to the contract needs its words there (a docstring, a string
    under the field, an ERROR_CODE_WHEN entry) and an example in contract_doc.EXAMPLES."""
    missing: list[str] = []
    for model in contract_doc.members(contract.ClientMessage) + contract_doc.members(contract.ServerMessage):
        name = contract_doc.message_name(model)
        if not (model.__doc__ or "").strip():
            missing.append(f"{model.__name__}: a docstring")
        if name not in contract_doc.EXAMPLES:
            missing.append(f"{name}: an example in contract_doc.EXAMPLES")
        if issubclass(model, _Action) and not model.answered_by:
            missing.append(f"{model.__name__}: answered_by")
        for field, info in model.model_fields.items():
            if field not in ("action", "type") and not info.description:
                missing.append(f"{model.__name__}.{field}: a string under the field")
    missing += [
        f"ERROR_CODE_WHEN[{c.name}]" for c in contract.ErrorCode if not contract.ERROR_CODE_WHEN.get(c)
    ]
    assert not missing, f"the contract lacks: {missing}; then run {REGENERATE}"


def test_an_example_that_breaks_the_contract_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {
        **contract_doc.EXAMPLES,
        "query": {"action": "query", "sessionId": "s", "text": "a", "audio": "YQ=="},
    }
    monkeypatch.setattr(contract_doc, "EXAMPLES", broken)
    with pytest.raises(contract.ContractError, match="exactly one of text, audio, queryKey"):
        contract_doc.render()


# ------------------------------------------------------------------------- nothing outside the repo

#: A path or link that leaves the repository: `../` climbing above the root, or the old sibling
#: folder the contract lived in before it moved into docs/.
_PATHLIKE = re.compile(r"(?:\]\(|`|\s|^)((?:\.\./)+[^\s`)\]]*)", re.M)
_OUTSIDE_NAMES = ("shared/contract", "websocket-protocol.md")


def outside_references(text: str, where: Path) -> list[str]:
    """References in a Markdown file that point outside the repository root."""
    found = [name for name in _OUTSIDE_NAMES if name in text]
    for match in _PATHLIKE.finditer(text):
        target = (where.parent / match.group(1)).resolve()
        if ROOT.resolve() not in (target, *target.parents):
            found.append(match.group(1))
    return found


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_no_document_points_outside_the_repository() -> None:
    bad = {
        str(p.relative_to(ROOT)): refs for p in documents() if (refs := outside_references(p.read_text(), p))
    }
    assert not bad, f"documents refer to files outside the repository: {bad}"


def test_the_outside_reference_check_can_tell() -> None:
    readme = ROOT / "README.md"
    assert outside_references("see (`../shared/contract/websocket-protocol.md`)", readme)
    assert outside_references("[x](../../etc/passwd)", ROOT / "docs" / "interfaces.md")
    assert outside_references("the contract ../sibling/file.md", readme)
    assert not outside_references("[contract](contract.md), `docs/contract.md`", ROOT / "docs" / "x.md")
    # Inside the repository: docs/ may point up to the root.
    assert not outside_references("[readme](../README.md)", ROOT / "docs" / "interfaces.md")


def test_no_code_names_the_old_contract_file() -> None:
    sources = [*(ROOT / "runtime").rglob("*.py"), *(ROOT / "cdk" / "synapscribe_cdk").rglob("*.py")]
    bad = [str(p.relative_to(ROOT)) for p in sources if any(n in p.read_text() for n in _OUTSIDE_NAMES)]
    assert not bad, (
        f"these name the contract's old place outside the repository (now docs/contract.md): {bad}"
    )
