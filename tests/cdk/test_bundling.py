"""The Lambda assets: cp312 manylinux dependencies from the wheelhouse, no network, clear failures;
each handler's asset holds its own import closure of the product and nothing else, under a size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from synapscribe_cdk.bundling import BundlingError, import_closure, lambda_requirements, prepare_lambda_asset
from synapscribe_cdk.stacks.api import SWEEPER_HANDLER, VALIDATION_HANDLER, WEBSOCKET_HANDLER
from synth_support import REPO

HANDLERS = (WEBSOCKET_HANDLER, VALIDATION_HANDLER, SWEEPER_HANDLER)
#: The product's share of an asset (its modules and platform.yaml): 209 kB for the WebSocket handler
#: once it gained the service's ceilings, the intake switch, host routing, history and cancel (it
#: was 120-160 kB before them); a module that pulls in a tool or the host's code goes far past this.
PACKAGE_BUDGET_BYTES = 240_000
#: A whole asset, dependencies included (about 11.4 MB today; pydantic's compiled core is most of it).
ASSET_BUDGET_BYTES = 14_000_000


def _fake_repo(tmp_path: Path, wheels: bool) -> Path:
    repo = tmp_path / "repo"
    (repo / "runtime").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    shutil.copytree(REPO / "runtime" / "synapscribe", repo / "runtime" / "synapscribe",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    if wheels:
        shutil.copytree(REPO / "build" / "lambda-wheels", repo / "build" / "lambda-wheels")
    return repo


def test_requirements_are_the_pyproject_pins() -> None:
    reqs = lambda_requirements(REPO / "pyproject.toml")
    assert [r.split("==")[0] for r in reqs] == ["pydantic", "pydantic-settings", "PyYAML", "mutagen"]
    assert all("==" in r for r in reqs)


def test_unpinned_dependency_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pydantic>=2", "PyYAML==6.0.3"]\n')
    with pytest.raises(BundlingError, match="does not pin pydantic, pydantic-settings, mutagen"):
        lambda_requirements(pyproject)


def test_missing_wheelhouse_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(BundlingError, match="run scripts/setup once"):
        prepare_lambda_asset(_fake_repo(tmp_path, wheels=False), WEBSOCKET_HANDLER)


def test_asset_is_built_offline_and_reused(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path, wheels=True)
    asset = prepare_lambda_asset(repo, WEBSOCKET_HANDLER)
    assert (asset / "synapscribe" / "edge" / "websocket_handler.py").is_file()
    assert not list(asset.rglob("__pycache__"))
    assert list(asset.glob("pydantic_core/*.cpython-312-x86_64-linux-gnu.so"))
    assert not list(asset.glob("*.dist-info"))
    assert prepare_lambda_asset(repo, WEBSOCKET_HANDLER) == asset, "same inputs, same asset directory"
    (repo / "runtime" / "synapscribe" / "edge" / "websocket_handler.py").write_text("# changed\n")
    changed = prepare_lambda_asset(repo, WEBSOCKET_HANDLER)
    assert changed != asset
    assert (changed / "synapscribe" / "edge" / "websocket_handler.py").read_text() == "# changed\n"


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_asset_carries_its_closure_and_nothing_else(handler: str) -> None:
    asset = prepare_lambda_asset(REPO, handler)
    module = handler.rpartition(".")[0]
    shipped = {str(p.relative_to(asset)) for p in (asset / "synapscribe").rglob("*") if p.is_file()}
    closure = {str(p.relative_to(REPO / "runtime")) for p in import_closure(REPO / "runtime", module)}
    assert shipped == closure | {"synapscribe/platform.yaml"}
    assert not (asset / "synapscribe_ops").exists() and not (asset / "synapscribe_local").exists()
    assert "synapscribe/agentcore/pipeline.py" not in shipped, "AgentCore is not an edge handler's"
    package_bytes = _tree_bytes(asset / "synapscribe")
    assert package_bytes < PACKAGE_BUDGET_BYTES, f"{handler}: {package_bytes} bytes of the product"
    assert _tree_bytes(asset) < ASSET_BUDGET_BYTES, f"{handler}: {_tree_bytes(asset)} bytes in all"


def test_the_handlers_do_not_share_one_asset() -> None:
    assets = {prepare_lambda_asset(REPO, h) for h in HANDLERS}
    assert len(assets) == len(HANDLERS)


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_handler_imports_from_its_asset_alone(handler: str, tmp_path: Path) -> None:
    """The closure is complete: the handler's module imports with only the asset's copy of the
    package on the path (the dependencies from this interpreter's site-packages: the asset's
    are built for Lambda's CPython 3.12, and no .pth file runs, so the editable install is absent)."""
    asset = prepare_lambda_asset(REPO, handler)
    shutil.copytree(asset / "synapscribe", tmp_path / "synapscribe")
    module = handler.rpartition(".")[0]
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module({module!r})\n"
        f"assert m.__file__.startswith({str(tmp_path)!r}), m.__file__\n"
    )
    path = os.pathsep.join([str(tmp_path), sysconfig.get_paths()["purelib"]])
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
