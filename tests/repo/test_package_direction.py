"""Who imports whom among the three packages of runtime/: the product (synapscribe: what the GPU
hosts and the Lambdas run) imports neither the operator tools (synapscribe_ops) nor the test
doubles and local stack (synapscribe_local); the doubles do not import the tools.

A static scan of every `import` (at any depth: one inside a function counts) and of every string
naming a module of the other packages (what `importlib.import_module` would load)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
#: package -> the packages it must not reach
FORBIDDEN = {
    "synapscribe": ("synapscribe_ops", "synapscribe_local"),
    "synapscribe_local": ("synapscribe_ops",),
    # The CDK app deploys the product: the names it shares with a tool live in the product.
    "synapscribe_cdk": ("synapscribe_ops", "synapscribe_local"),
}
#: Where each package's folder is.
FOLDERS = {"synapscribe_cdk": ROOT / "cdk" / "synapscribe_cdk"}


def folder(package: str) -> Path:
    return FOLDERS.get(package, RUNTIME / package)


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, module) of each import in `source`, and of each string that is a dotted module path."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"[a-z_]+(\.[a-z_]+)*(:[A-Za-z_]+)?", node.value)
        ):
            found.append((node.lineno, node.value.partition(":")[0]))
    return found


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted(folder(package).rglob("*.py"))
        for line, name in imported_names(path.read_text(encoding="utf-8"))
        if name.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_package_does_not_reach_up(package: str) -> None:
    assert (folder(package) / "__init__.py").is_file()
    assert not violations(package, FORBIDDEN[package])


@pytest.mark.parametrize(
    "source",
    [
        "from synapscribe_ops.smoke import cli\n",
        "import synapscribe_local.standin.config\n",
        "def f():\n    from synapscribe_local import audiogen\n",
        'MODULE = "synapscribe_ops.bench.cli"\n',
    ],
)
def test_the_scan_sees_each_kind_of_import(source: str) -> None:
    assert {n.split(".")[0] for _, n in imported_names(source)} & set(FORBIDDEN["synapscribe"])
