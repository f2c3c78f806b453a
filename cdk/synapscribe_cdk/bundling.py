"""The Lambda code assets: each handler's own modules of the runtime package plus the Lambda-side
dependencies, built without Docker.

The Lambda runtime is CPython 3.12 on manylinux x86_64, whatever this machine runs, so the
dependencies are installed with pip's cross-platform options from the wheelhouse that
scripts/setup downloads once (`build/lambda-wheels`): synth itself needs no network. The
installed dependencies are cached per (pins, wheelhouse) in `build/lambda-deps/<hash>`, and each
asset per (dependencies, handler's modules) in `build/lambda-asset/<hash>`.

An asset carries only its handler's import closure: the modules of the package that the handler's
module imports, directly or through others, found by reading their `import` statements (at any
depth, so an import inside a function counts), plus the package data those modules' folders hold
(platform.yaml). Nothing else of the runtime ships to a Lambda.
"""

from __future__ import annotations

import ast
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
#: Package data an asset carries beside the modules (the platform configuration).
_DATA_SUFFIXES = {".yaml"}
#: Asset directories kept: three handlers' assets for this source and the two before it.
KEEP_ASSETS = 9


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


def _module_file(runtime: Path, module: str) -> Path | None:
    """The file of `module` (a.b.c) under `runtime`, or None when it is not a module there."""
    base = runtime.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module name `path` (module `module`) imports, with each `from X import y` as X and X.y."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_closure(runtime: Path, module: str, package: str = PACKAGE) -> list[Path]:
    """The files of `module` and of every module of `package` it imports, directly or not, with
    the `__init__.py` of each package on the way; sorted, each once."""
    start = _module_file(runtime, module)
    if start is None:
        raise BundlingError(f"{module} is not a module of {runtime}")
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(runtime, name)
        if name in seen or path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [m for m in _imported_modules(path, name) if m == package or m.startswith(package + ".")]
    return sorted(set(seen.values()))


def _asset_files(runtime: Path, module: str) -> list[Path]:
    modules = import_closure(runtime, module)
    folders = {p.parent for p in modules}
    data = [p for folder in folders for p in folder.iterdir() if p.is_file() and p.suffix in _DATA_SUFFIXES]
    return sorted({*modules, *data})


def prepare_lambda_asset(repo_root: Path, handler: str) -> Path:
    """Build (or reuse) `build/lambda-asset/<hash>` for `handler` (module.function): the
    dependencies and the handler module's import closure in the runtime package.

    Each asset directory is immutable and named by its content, so concurrent synths never
    see a half-written one.
    """
    build = repo_root / "build"
    deps = _install_dependencies(
        lambda_requirements(repo_root / "pyproject.toml"), build / "lambda-wheels", build / "lambda-deps"
    )
    runtime = repo_root / "runtime"
    package = runtime / PACKAGE
    if not (package / "__init__.py").is_file():
        raise BundlingError(f"{package} is not the runtime package")
    module = handler.rpartition(".")[0]
    files = _asset_files(runtime, module)
    digest = hashlib.sha256(deps.name.encode())
    for path in files:
        digest.update(str(path.relative_to(runtime)).encode() + b"\0" + path.read_bytes() + b"\0")
    asset = build / "lambda-asset" / digest.hexdigest()[:16]
    if asset.is_dir():
        return asset
    staging = asset.with_name(f".{asset.name}.{os.getpid()}.tmp")
    shutil.copytree(deps, staging)
    for path in files:
        out = staging / path.relative_to(runtime)
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
