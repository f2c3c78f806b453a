"""The developer tooling: pre-commit runs the pinned ruff from .venv, requirements.lock pins every
dependency pyproject.toml pins, and lint/test-fast need only the .venv (no Debian set-up)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXTRAS = ("local", "cdk", "bench", "dev")


def pinned() -> dict[str, str]:
    """name -> version of every `name==version` in [project] dependencies and the extras setup installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS:
        specs += project["optional-dependencies"][extra]
    out: dict[str, str] = {}
    for spec in specs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)\s*", spec)
        assert m, f"pyproject.toml: pin {spec!r} exactly (name==version)"
        out[normalize(m.group(1))] = m.group(3)
    return out


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: not an exact pin: {line!r}"
            out[normalize(name)] = version
    return out


def test_the_lock_pins_every_top_level_dependency_at_its_version() -> None:
    lock = locked()
    wrong = {n: (v, lock.get(n)) for n, v in pinned().items() if lock.get(n) != v}
    assert not wrong, (
        f"requirements.lock disagrees with pyproject.toml (pyproject, lock): {wrong}; run scripts/lock"
    )
    assert len(lock) > len(pinned()), "the lock holds the transitive dependencies too"


def test_setup_installs_with_the_lock_and_stamps_it() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "-c requirements.lock" in setup
    assert "requirements.lock" in setup.split("want=", 1)[1].splitlines()[0], "a lock change must reinstall"


def test_the_lock_command_is_documented_and_runs() -> None:
    assert (ROOT / "scripts" / "lock").stat().st_mode & 0o111
    out = subprocess.run(["make", "-n", "lock"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/lock" in out


def hooks() -> list[dict[str, object]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [h for repo in config["repos"] for h in repo["hooks"]]


def test_pre_commit_runs_the_pinned_ruff_from_the_venv() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [r["repo"] for r in config["repos"]] == ["local"], "local hooks only: nothing to download"
    ids = {str(h["id"]) for h in hooks()}
    assert {"ruff-check", "ruff-format"} <= ids
    version = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ruff"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert version == pinned()["ruff"]
    for hook in hooks():
        assert str(hook["entry"]).startswith(".venv/bin/ruff "), hook
        assert hook["language"] == "system"


@pytest.mark.parametrize(
    ("hook_id", "source", "ok"),
    [
        ("ruff-check", "import os\n", False),
        ("ruff-check", "print(1)\n", True),
        ("ruff-format", "x  =  1\n", None),  # reformatted: pre-commit counts a changed file as failed
        ("ruff-format", "x = 1\n", True),
    ],
)
def test_each_hook_runs_as_pre_commit_runs_it(
    tmp_path: Path, hook_id: str, source: str, ok: bool | None
) -> None:
    """pre-commit runs `entry FILES` from the repository root."""
    hook = next(h for h in hooks() if h["id"] == hook_id)
    target = tmp_path / "sample.py"
    target.write_text(source)
    done = subprocess.run(
        [*shlex.split(str(hook["entry"])), str(target)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if ok is None:
        assert done.returncode == 0 and target.read_text() == "x = 1\n", done.stdout + done.stderr
    else:
        assert (done.returncode == 0) is ok, done.stdout + done.stderr


def test_lint_and_test_fast_need_only_the_venv() -> None:
    for target in ("lint", "test-fast"):
        out = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert "scripts/setup --python-only" in out, out
        assert not re.search(r"scripts/setup\s*$", out, flags=re.M), f"make {target} runs the full set-up"


def test_python_only_setup_touches_no_debian_or_npm(tmp_path: Path) -> None:
    """scripts/setup --python-only with apt-get, dpkg-query, sudo and npm replaced by traps, on a
    .venv that is already installed (its stamp matches), so nothing is reinstalled."""
    traps = tmp_path / "bin"
    traps.mkdir()
    called = tmp_path / "called"
    for tool in ("apt-get", "dpkg-query", "sudo", "npm", "npx"):
        (traps / tool).write_text(f"#!/bin/sh\necho {tool} >> {called}\nexit 1\n")
        (traps / tool).chmod(0o755)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamped = ("pyproject.toml", "runtime/pyproject.toml", "cdk/pyproject.toml", "requirements.lock")
    stamp = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in stamped))
    (venv / ".synapscribe-installed").write_text(stamp.hexdigest() + "\n")
    env = {**os.environ, "PATH": f"{traps}:{os.environ['PATH']}", "VENV": str(venv)}
    done = subprocess.run(
        [str(ROOT / "scripts" / "setup"), "--python-only"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not called.exists(), f"--python-only ran {called.read_text().split()}"
    assert "ready (Python only)" in done.stderr
    assert "installing" not in done.stderr, "the stamp matched: nothing to install"


def test_nothing_edits_sys_path() -> None:
    """Every package (runtime/synapscribe, runtime/synapscribe_ops, runtime/synapscribe_local,
    cdk/synapscribe_cdk) is installed: imports need no path edits."""
    edits = [
        f"{p.relative_to(ROOT)}:{n}"
        for folder in ("runtime", "cdk", "tests", "scripts")
        for p in sorted((ROOT / folder).rglob("*"))
        if p.is_file() and (p.suffix == ".py" or p.parent.name == "scripts")
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if re.search(r"sys\.path\.(insert|append|extend)|sys\.path(\[[^\]]*\])?\s*\+?=", line)
        and "re.search" not in line
    ]
    assert not edits, f"sys.path edits: {edits}"
    # Three projects, each installed by scripts/setup, import their packages from where they stand.
    for project_dir, package in (
        ("", "synapscribe"),
        ("runtime", "synapscribe_ops"),
        ("cdk", "synapscribe_cdk"),
    ):
        project = tomllib.loads((ROOT / project_dir / "pyproject.toml").read_text())
        assert package in project["tool"]["setuptools"]["packages"]["find"]["include"]
        assert f"-e ./{project_dir}" in (ROOT / "scripts" / "setup").read_text() or not project_dir
