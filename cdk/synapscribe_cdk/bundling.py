"""The Lambda code asset: the runtime package plus its Lambda-side dependencies, built without Docker.

The Lambda runtime is CPython 3.12 on manylinux x86_64, whatever this machine runs, so the
dependencies are installed with pip's cross-platform options from the wheelhouse that
scripts/setup downloads once (`build/lambda-wheels`): synth itself needs no network. The
installed dependencies are cached per (pins, wheelhouse) in `build/lambda-deps/<hash>`, and the
asset per (dependencies, package source) in `build/lambda-asset/<hash>`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

#: What the edge handlers import besides boto3 (which the Lambda runtime provides). Versions are
#: taken from pyproject.toml's pins so the Lambda runs what the tests run.
LAMBDA_DEPENDENCIES = ("pydantic", "pydantic-settings", "PyYAML", "mutagen")
LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
PACKAGE = "synapscribe"
_SOURCE_SUFFIXES = {".py", ".yaml", ".typed"}
KEEP_ASSETS = 3


class BundlingError(RuntimeError):
    """The Lambda asset cannot be built (missing wheelhouse, unpinned dependency, pip failure)."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lambda_requirements(pyproject: Path) -> list[str]:
    """`name==version` for each LAMBDA_DEPENDENCIES entry, from pyproject.toml's pins."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = {}
    for spec in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)\s*", spec)
        if m:
            pins[_normalise(m[1])] = f"{m[1]}=={m[2]}"
    missing = [d for d in LAMBDA_DEPENDENCIES if _normalise(d) not in pins]
    if missing:
        raise BundlingError(f"pyproject.toml does not pin {', '.join(missing)} exactly (name==version)")
    return [pins[_normalise(d)] for d in LAMBDA_DEPENDENCIES]


def _install_dependencies(requirements: list[str], wheelhouse: Path, cache_root: Path) -> Path:
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl")) if wheelhouse.is_dir() else []
    if not wheels:
        raise BundlingError(
            f"no wheels in {wheelhouse}: run scripts/setup once (it downloads the Lambda wheelhouse)"
        )
    key = hashlib.sha256("\n".join([*requirements, *wheels]).encode()).hexdigest()[:16]
    target = cache_root / key
    if target.is_dir():
        return target
    staging = cache_root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-index", "--find-links", str(wheelhouse),
        "--platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON, "--implementation", "cp", "--no-compile",
        "--only-binary=:all:", "--target", str(staging), *requirements,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundlingError(
            f"pip could not install {' '.join(requirements)} for Python {LAMBDA_PYTHON} from {wheelhouse} "
            f"(run scripts/setup to refresh it): {result.stderr.strip()[-600:]}"
        )
    for junk in staging.glob("*.dist-info"):
        shutil.rmtree(junk)
    for junk_dir in ("bin", "share", "__pycache__"):
        shutil.rmtree(staging / junk_dir, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another synth finished the same install first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _package_files(source: Path) -> list[Path]:
    return [
        p
        for p in sorted(source.rglob("*"))
        if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
    ]


def prepare_lambda_asset(repo_root: Path) -> Path:
    """Build (or reuse) `build/lambda-asset/<hash>`: dependencies + the runtime package.

    Each asset directory is immutable and named by its content, so concurrent synths never
    see a half-written one.
    """
    build = repo_root / "build"
    deps = _install_dependencies(
        lambda_requirements(repo_root / "pyproject.toml"), build / "lambda-wheels", build / "lambda-deps"
    )
    package = repo_root / "runtime" / PACKAGE
    if not (package / "__init__.py").is_file():
        raise BundlingError(f"{package} is not the runtime package")
    files = _package_files(package)
    digest = hashlib.sha256(deps.name.encode())
    for path in files:
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    asset = build / "lambda-asset" / digest.hexdigest()[:16]
    if asset.is_dir():
        return asset
    staging = asset.with_name(f".{asset.name}.{os.getpid()}.tmp")
    shutil.copytree(deps, staging)
    for path in files:
        out = staging / path.relative_to(package.parent)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    try:
        staging.rename(asset)
    except OSError:  # another synth finished the same asset first
        shutil.rmtree(staging, ignore_errors=True)
    _prune(asset.parent, keep=KEEP_ASSETS)
    return asset


def _prune(root: Path, keep: int) -> None:
    """Drop all but the `keep` newest asset directories (each is ~17 MB)."""
    done = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in done[keep:]:
        shutil.rmtree(old, ignore_errors=True)
