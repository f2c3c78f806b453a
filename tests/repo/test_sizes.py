"""Small rooms: no module of the runtime (runtime/) or of the CDK app (cdk/synapscribe_cdk) is over
MODULE_MAX_LINES lines, and no class over CLASS_MAX_LINES (issue 20). A unit that grows past them
is split along its parts, as `Outbox` (agentcore/outbox.py) is one small, well-named part."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (ROOT / "runtime", ROOT / "cdk" / "synapscribe_cdk")
MODULE_MAX_LINES = 600
CLASS_MAX_LINES = 250


def modules() -> list[Path]:
    found = [
        path
        for folder in SCANNED
        for path in folder.rglob("*.py")
        if not any(
            part.startswith(".") or part.endswith(".egg-info") for part in path.relative_to(ROOT).parts
        )
    ]
    return sorted(found)


def oversized(path: Path, module_max: int, class_max: int) -> list[str]:
    """What in `path` is over its limit: the module's lines, each class's (end_lineno - lineno + 1,
    decorators not counted, nested classes counted on their own too)."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    lines = len(text.splitlines())
    if lines > module_max:
        found.append(f"{where}: {lines} lines (at most {module_max})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            if size > class_max:
                found.append(f"{where}: class {node.name} is {size} lines (at most {class_max})")
    return found


def test_the_scan_sees_the_runtime_and_the_cdk_app() -> None:
    scanned = modules()
    names = {p.relative_to(ROOT).as_posix() for p in scanned}
    assert "runtime/synapscribe/agentcore/outbox.py" in names
    assert "cdk/synapscribe_cdk/stacks/api.py" in names
    assert len(scanned) > 100, len(scanned)


def test_no_module_or_class_is_over_its_size() -> None:
    problems = [
        problem for path in modules() for problem in oversized(path, MODULE_MAX_LINES, CLASS_MAX_LINES)
    ]
    assert not problems, "split these along their parts:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n" * 4, ["4 lines (at most 3)"]),
        ("class A:\n    a = 1\n    b = 2\n", ["class A is 3 lines (at most 2)"]),
        (
            "def f():\n    class Inner:\n        a = 1\n        b = 2\n",
            ["class Inner is 3 lines (at most 2)"],
        ),
        ("class A:\n    a = 1\n", []),
    ],
)
def test_the_check_counts_module_lines_and_class_spans(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    found = oversized(path, module_max=3 if "x = 1" in source else 100, class_max=2)
    assert [f.split(": ", 1)[1] for f in found] == expected
