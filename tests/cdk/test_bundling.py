"""The Lambda asset: cp312 manylinux dependencies from the wheelhouse, no network, clear failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from synapscribe_cdk.bundling import BundlingError, lambda_requirements, prepare_lambda_asset
from synth_support import REPO


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
        prepare_lambda_asset(_fake_repo(tmp_path, wheels=False))


def test_asset_is_built_offline_and_reused(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path, wheels=True)
    asset = prepare_lambda_asset(repo)
    assert (asset / "synapscribe" / "edge" / "websocket_handler.py").is_file()
    assert not list(asset.rglob("__pycache__"))
    assert list(asset.glob("pydantic_core/*.cpython-312-x86_64-linux-gnu.so"))
    assert not list(asset.glob("*.dist-info"))
    assert prepare_lambda_asset(repo) == asset, "same inputs, same asset directory"
    (repo / "runtime" / "synapscribe" / "edge" / "websocket_handler.py").write_text("# changed\n")
    changed = prepare_lambda_asset(repo)
    assert changed != asset
    assert (changed / "synapscribe" / "edge" / "websocket_handler.py").read_text() == "# changed\n"
