"""The repository's shell scripts pass shellcheck, and the bake's validation (ami/scripts/validate.sh)
names what is wrong and fails on it. cleanup.sh changes the machine it runs on (host keys, machine id),
so it runs only inside the nspawn host (tests/host/test_host.py), never here."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
VALIDATE = ROOT / "ami" / "scripts" / "validate.sh"
SHELLS = {"sh", "bash", "dash"}


def _shebang_shell(path: Path) -> str | None:
    with path.open("rb") as fh:
        first = fh.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    program = Path(words[1] if Path(words[0]).name == "env" and len(words) > 1 else words[0]).name
    return program if program in SHELLS else None


def shell_scripts() -> list[Path]:
    """Every tracked or new *.sh file, and every shell file in a scripts/ directory."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    found = []
    for name in listed:
        path = ROOT / name
        if not path.is_file() or "node_modules" in path.parts:
            continue
        if path.suffix == ".sh" or ("scripts" in path.parts[:-1] and _shebang_shell(path)):
            found.append(path)
    return sorted(found)


def _shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHELLCHECK), "--format=gcc", *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_shellcheck_passes_every_shell_script() -> None:
    scripts = shell_scripts()
    names = {str(p.relative_to(ROOT)) for p in scripts}
    assert {"ami/scripts/cleanup.sh", "ami/scripts/validate.sh", "scripts/bake-ami", "scripts/setup"} <= names
    proc = _shellcheck(*scripts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_finds_a_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/cache\nif [ $# == 1 ]; then echo "$@"; fi\n')
    proc = _shellcheck(bad)
    assert proc.returncode != 0
    assert "SC2086" in proc.stdout  # the unquoted $1


@pytest.fixture
def baked(tmp_path: Path) -> dict[str, str]:
    """A model directory as the model role leaves it, a build user with a key, and stand-ins for
    the commands that would read this machine's systemd and user database."""
    model = tmp_path / "model"
    model.mkdir()
    weights = b"weights" * 1000
    (model / "model.safetensors").write_bytes(weights)
    (model / "SUMS").write_text(f"{hashlib.sha256(weights).hexdigest()}  model.safetensors\n")
    commit = "0123456789abcdef0123456789abcdef01234567"
    (model / "COMMIT").write_text(commit + "\n")
    model.chmod(0o555)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA packer\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text('#!/bin/sh\n[ "$1" = is-enabled ] && echo enabled\n')
    (bin_dir / "getent").write_text(f'#!/bin/sh\necho "$2:x:1000:1000::{home}:/bin/bash"\n')
    for stub in ("systemctl", "getent"):
        (bin_dir / stub).chmod(0o755)
    # The agent's configuration template as the cloudwatch_agent role leaves it.
    (tmp_path / "agent.json.in").write_text('{"logs": {}}\n')
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME_DIR": str(home),
        "SYNAPSCRIBE_UNITS": "unit-a unit-b",
        "SYNAPSCRIBE_VLLM_UNIT": "synapscribe-hosttest-no-such-unit",
        "SYNAPSCRIBE_DEPLOY_ENV_FILE": str(tmp_path / "deploy.env"),
        "BUILD_USER": "builder",
        "SYNAPSCRIBE_MAX_MODEL_LEN": "16384",
        "SYNAPSCRIBE_MODEL_ID": "org/model",
        "SYNAPSCRIBE_MODEL_PATH": str(model),
        "SYNAPSCRIBE_MODEL_REVISION": "main",
        "SYNAPSCRIBE_MODEL_CHECKSUM_FILE": "SUMS",
        "SYNAPSCRIBE_MODEL_REVISION_FILE": "COMMIT",
        "SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE": str(tmp_path / "agent.json.in"),
        "SYNAPSCRIBE_AGENT_CONFIG": str(tmp_path / "agent.json"),
        "COMMIT": commit,
        # No GPU and no vLLM here, as on the host test.
        "VALIDATE_GPU": "false",
        "VALIDATE_VLLM": "false",
    }


def _validate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(VALIDATE)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_validation_names_each_failure_and_fails(baked: dict[str, str], tmp_path: Path) -> None:
    Path(baked["SYNAPSCRIBE_DEPLOY_ENV_FILE"]).write_text("AWS_REGION=eu-west-1\n")
    # One environment's agent configuration (user data on a booted instance) must not be baked.
    Path(baked["SYNAPSCRIBE_AGENT_CONFIG"]).write_text('{"logs": {}}\n')
    proc = _validate(baked)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "validate: ok the units are enabled (unit-a unit-b)" in proc.stdout
    assert "validate: ok the weights match SUMS" in proc.stdout
    assert f"validate: model org/model@{baked['COMMIT']} (requested main)" in proc.stdout
    if os.geteuid() == 0:  # the weights belong to root only when root made them
        assert "validate: ok the weights are read-only (root:555)" in proc.stdout
    for failed in (
        f"FAILED: no {baked['SYNAPSCRIBE_DEPLOY_ENV_FILE']}",
        f"FAILED: no {baked['SYNAPSCRIBE_AGENT_CONFIG']}",
        "FAILED: no authorized_keys of builder or root",
        "FAILED: vLLM serves a context of 16384 tokens",
    ):
        assert f"validate: {failed}" in proc.stderr, proc.stderr
    assert f"validate: {baked['HOME_DIR']}/.ssh/authorized_keys is still there" in proc.stderr
    assert "the image is not complete" in proc.stderr and "image complete\n" not in proc.stdout


def test_removed_state_passes_its_checks(baked: dict[str, str]) -> None:
    (Path(baked["HOME_DIR"]) / ".ssh" / "authorized_keys").unlink()
    proc = _validate(baked)
    assert f"validate: ok no {baked['SYNAPSCRIBE_DEPLOY_ENV_FILE']}" in proc.stdout
    assert f"validate: ok no {baked['SYNAPSCRIBE_AGENT_CONFIG']}" in proc.stdout
    assert (
        f"validate: ok the CloudWatch agent's template {baked['SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE']}"
        in proc.stdout
    )
    assert f"{baked['HOME_DIR']}/.ssh/authorized_keys is still there" not in proc.stderr


def test_an_image_without_the_agents_template_fails_the_validation(baked: dict[str, str]) -> None:
    Path(baked["SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE"]).unlink()
    proc = _validate(baked)
    assert proc.returncode == 1
    assert (
        f"validate: FAILED: the CloudWatch agent's template {baked['SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE']}"
        in proc.stderr
    )


def test_a_bad_model_fails_the_validation(baked: dict[str, str]) -> None:
    model = Path(baked["SYNAPSCRIBE_MODEL_PATH"])
    model.chmod(0o755)
    (model / "model.safetensors").write_bytes(b"truncated")
    (model / "COMMIT").write_text("main\n")
    model.chmod(0o555)
    proc = _validate(baked)
    assert proc.returncode == 1
    assert "validate: FAILED: the weights match SUMS" in proc.stderr
    assert "validate: COMMIT holds main, not a commit" in proc.stderr
    assert "validate: FAILED: the model commit is recorded in COMMIT" in proc.stderr


def test_a_pinned_commit_must_be_the_one_baked(baked: dict[str, str]) -> None:
    pinned = "f" * 40
    proc = _validate({**baked, "SYNAPSCRIBE_MODEL_REVISION": pinned})
    assert proc.returncode == 1
    assert f"validate: baked {baked['COMMIT']}, pinned {pinned}" in proc.stderr


def test_the_validation_refuses_to_run_without_its_facts(baked: dict[str, str]) -> None:
    env = {k: v for k, v in baked.items() if k != "SYNAPSCRIBE_UNITS"}
    proc = _validate(env)
    assert proc.returncode != 0 and "SYNAPSCRIBE_UNITS" in proc.stderr
    assert "validate: ok" not in proc.stdout
