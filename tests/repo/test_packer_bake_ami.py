"""scripts/bake-ami (the Packer call of `synapscribe ami bake`) against a recording `packer`: its
checks, its Packer steps, the printed image id and the resolved model commit in the manifest. It
publishes nothing (no `aws` call at all: the recording `aws` fails the test if called)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bake-ami"

FAKE_PACKER = r"""#!/usr/bin/env bash
echo "packer $*" >> "$FAKE_LOG"
case $1 in
  version) echo "Packer v${FAKE_PACKER_VERSION}" ;;
  plugins) printf 'github.com/hashicorp/amazon_v1.3.9\ngithub.com/hashicorp/ansible_v1.1.2\n' ;;
  build)
    [ -n "${FAKE_BUILD_FAIL:-}" ] && exit 1
    # What the Packer file provisioner downloads from the model role's REVISION file.
    [ -z "${FAKE_NO_COMMIT:-}" ] && echo "$FAKE_COMMIT" > ami/model-revision.txt
    cat > ami/manifest.json <<EOF
{"builds": [{"packer_run_uuid": "old", "artifact_id": "eu-west-1:ami-0000000000000old"},
            {"packer_run_uuid": "new", "artifact_id": "eu-west-1:ami-0123456789abcdef0"}],
 "last_run_uuid": "new"}
EOF
    ;;
esac
exit 0
"""

# Any call fails: the script must not touch AWS (publishing is `synapscribe ami promote`'s).
FAKE_AWS = r"""#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
echo "fake aws: unexpected call" >&2
exit 2
"""

COMMIT = "f" * 8 + "0123456789abcdef0123456789abcdef"


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, object]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "packer", FAKE_PACKER)
    _exe(bin_dir / "aws", FAKE_AWS)
    return {
        "bin": bin_dir,
        "log": tmp_path / "calls.log",
        "ssm": tmp_path / "ssm.json",
        "manifest": tmp_path / "manifest.json",
    }


def run(fake: dict[str, object], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PATH": f"{fake['bin']}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(fake["log"]),
        "FAKE_SSM": str(fake["ssm"]),
        "FAKE_PACKER_VERSION": "1.11.2",
        "FAKE_COMMIT": COMMIT,
        "VENV": str(Path(sys.executable).parent.parent),
        **env,
    }
    full_env.pop("AWS_REGION", None)
    full_env.pop("AWS_DEFAULT_REGION", None)
    proc = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=120, check=False, cwd=ROOT
    )
    manifest = ROOT / "ami" / "manifest.json"
    if manifest.exists():
        Path(str(fake["manifest"])).write_text(manifest.read_text())
        manifest.unlink()
    (ROOT / "ami" / "model-revision.txt").unlink(missing_ok=True)
    return proc


def calls(fake: dict[str, object]) -> list[str]:
    return Path(str(fake["log"])).read_text().splitlines()


def test_builds_and_prints_the_image(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", "--var", "max_model_len=32768")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ami-0123456789abcdef0"
    steps = [c.split()[1] for c in calls(fake) if c.startswith("packer ")]
    assert steps == ["version", "init", "plugins", "fmt", "validate", "build"]
    build = next(c for c in calls(fake) if c.startswith("packer build"))
    assert "-var region=eu-west-1" in build and "-var max_model_len=32768" in build
    assert not any(c.startswith("aws ") for c in calls(fake)), "the bake publishes nothing"


def test_records_the_resolved_model_commit(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(str(fake["manifest"])).read_text())
    last = next(b for b in manifest["builds"] if b["packer_run_uuid"] == manifest["last_run_uuid"])
    assert last["custom_data"]["model_commit"] == COMMIT
    assert f"model commit {COMMIT}" in proc.stderr


@pytest.mark.parametrize("commit", ["", "main"])
def test_no_model_commit_is_a_failed_bake(fake: dict[str, object], commit: str) -> None:
    env = {"FAKE_NO_COMMIT": "1"} if not commit else {"FAKE_COMMIT": commit}
    proc = run(fake, "--region", "eu-west-1", **env)
    assert proc.returncode == 1
    assert "not the baked model commit" in proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("retired", ["--rollback", "--no-publish", "--no-keep-previous"])
def test_publishing_options_are_gone(fake: dict[str, object], retired: str) -> None:
    proc = run(fake, "--region", "eu-west-1", retired)
    assert proc.returncode == 2 and f"unknown option {retired}" in proc.stderr


def test_old_packer_is_refused(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", FAKE_PACKER_VERSION="1.6.6")
    assert proc.returncode == 1
    assert "Packer 1.6.6 is too old" in proc.stderr
    assert not any(c.startswith("packer build") for c in calls(fake))


def test_failed_build_publishes_nothing(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", FAKE_BUILD_FAIL="1")
    assert proc.returncode == 1
    assert "no image" in proc.stderr
    assert proc.stdout.strip() == ""


def test_bad_options(fake: dict[str, object]) -> None:
    assert run(fake, "--bogus").returncode == 2
    proc = run(fake)
    assert proc.returncode == 1 and "no region" in proc.stderr
    proc = run(fake, "--region", "eu-west-1", "--var", "novalue")
    assert proc.returncode == 1 and "--var needs NAME=VALUE" in proc.stderr
