"""scripts/bake-ami against recording `packer` and `aws` programs: its checks, its Packer steps,
and what it publishes to SSM (keeping the previous id by default, and rollback), SSM errors other
than "not found" stopping it, and the resolved model commit in the manifest and the AMI's tags."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe.platform import load_platform

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

# SSM parameters live in a JSON file so the test can read what the script published.
FAKE_AWS = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
open(os.environ["FAKE_LOG"], "a").write("aws " + " ".join(args) + "\n")
store_path = os.environ["FAKE_SSM"]
store = json.load(open(store_path)) if os.path.exists(store_path) else {}
def opt(name):
    return args[args.index(name) + 1]
if args[:2] == ["sts", "get-caller-identity"]:
    if os.environ.get("FAKE_NO_CREDENTIALS"):
        print("Unable to locate credentials", file=sys.stderr); sys.exit(253)
    print("arn:aws:iam::123456789012:user/baker")
elif args[:2] == ["ssm", "get-parameter"]:
    name = opt("--name")
    if os.environ.get("FAKE_SSM_DENIED"):
        print("An error occurred (AccessDeniedException) when calling the GetParameter operation: "
              "User is not authorized to perform: ssm:GetParameter", file=sys.stderr)
        sys.exit(254)
    if name not in store:
        print("ParameterNotFound", file=sys.stderr); sys.exit(254)
    print(store[name])
elif args[:2] == ["ssm", "put-parameter"]:
    store[opt("--name")] = opt("--value")
    json.dump(store, open(store_path, "w"))
elif args[:2] == ["ec2", "create-tags"]:
    pass
else:
    print("fake aws: unexpected call", args, file=sys.stderr); sys.exit(2)
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
    _exe(bin_dir / "aws", FAKE_AWS.replace("/usr/bin/env python3", sys.executable))
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


def ssm(fake: dict[str, object]) -> dict[str, str]:
    path = Path(str(fake["ssm"]))
    return json.loads(path.read_text()) if path.exists() else {}


def calls(fake: dict[str, object]) -> list[str]:
    return Path(str(fake["log"])).read_text().splitlines()


def test_builds_and_publishes(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", "--var", "max_model_len=32768")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ami-0123456789abcdef0"
    steps = [c.split()[1] for c in calls(fake) if c.startswith("packer ")]
    assert steps == ["version", "init", "plugins", "fmt", "validate", "build"]
    build = next(c for c in calls(fake) if c.startswith("packer build"))
    assert "-var region=eu-west-1" in build and "-var max_model_len=32768" in build
    # Nothing was published before: nothing to keep, and "not found" is not an error.
    assert ssm(fake) == {load_platform().ami.ssm_parameter: "ami-0123456789abcdef0"}
    assert "no previous id to keep" in proc.stderr


def test_records_the_resolved_model_commit(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(str(fake["manifest"])).read_text())
    last = next(b for b in manifest["builds"] if b["packer_run_uuid"] == manifest["last_run_uuid"])
    assert last["custom_data"]["model_commit"] == COMMIT
    tag = next(c for c in calls(fake) if c.startswith("aws ec2 create-tags"))
    assert "--resources ami-0123456789abcdef0" in tag and f"Key=ModelCommit,Value={COMMIT}" in tag
    assert f"model commit {COMMIT}" in proc.stderr


@pytest.mark.parametrize("commit", ["", "main"])
def test_no_model_commit_publishes_nothing(fake: dict[str, object], commit: str) -> None:
    env = {"FAKE_NO_COMMIT": "1"} if not commit else {"FAKE_COMMIT": commit}
    proc = run(fake, "--region", "eu-west-1", **env)
    assert proc.returncode == 1
    assert "not the baked model commit" in proc.stderr
    assert ssm(fake) == {}


@pytest.mark.parametrize("flag", [[], ["--keep-previous"]])
def test_keeps_the_previous_id_by_default(fake: dict[str, object], flag: list[str]) -> None:
    ami = load_platform().ami
    Path(str(fake["ssm"])).write_text(json.dumps({ami.ssm_parameter: "ami-00000000000000001"}))
    proc = run(fake, "--region", "eu-west-1", *flag)
    assert proc.returncode == 0, proc.stderr
    assert ssm(fake) == {
        ami.ssm_parameter: "ami-0123456789abcdef0",
        ami.ssm_parameter_previous: "ami-00000000000000001",
    }


def test_no_keep_previous(fake: dict[str, object]) -> None:
    ami = load_platform().ami
    Path(str(fake["ssm"])).write_text(
        json.dumps(
            {ami.ssm_parameter: "ami-00000000000000001", ami.ssm_parameter_previous: "ami-0000000000000000a"}
        )
    )
    proc = run(fake, "--region", "eu-west-1", "--no-keep-previous")
    assert proc.returncode == 0, proc.stderr
    assert ssm(fake) == {
        ami.ssm_parameter: "ami-0123456789abcdef0",
        ami.ssm_parameter_previous: "ami-0000000000000000a",
    }
    assert not any(c.startswith("aws ssm get-parameter") for c in calls(fake))


@pytest.mark.parametrize("mode", [[], ["--rollback"]])
def test_ssm_access_denied_is_not_taken_for_unset(fake: dict[str, object], mode: list[str]) -> None:
    ami = load_platform().ami
    before = {ami.ssm_parameter: "ami-00000000000000001", ami.ssm_parameter_previous: "ami-0000000000000000a"}
    Path(str(fake["ssm"])).write_text(json.dumps(before))
    proc = run(fake, "--region", "eu-west-1", *mode, FAKE_SSM_DENIED="1")
    assert proc.returncode == 1
    assert "cannot read SSM parameter" in proc.stderr and "AccessDeniedException" in proc.stderr
    assert ssm(fake) == before
    assert not any(c.startswith("aws ssm put-parameter") for c in calls(fake))
    assert not any(c.startswith("packer build") for c in calls(fake)), "checked before building"


def test_rollback_swaps_latest_and_previous(fake: dict[str, object]) -> None:
    ami = load_platform().ami
    Path(str(fake["ssm"])).write_text(
        json.dumps(
            {ami.ssm_parameter: "ami-0000000000000bad1", ami.ssm_parameter_previous: "ami-0000000000000good"}
        )
    )
    proc = run(fake, "--region", "eu-west-1", "--rollback")
    assert proc.returncode == 0, proc.stderr
    assert ssm(fake) == {
        ami.ssm_parameter: "ami-0000000000000good",
        ami.ssm_parameter_previous: "ami-0000000000000bad1",
    }
    assert not any(c.startswith("packer build") for c in calls(fake))


def test_rollback_without_previous_fails(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", "--rollback")
    assert proc.returncode == 1
    assert "nothing to roll back to" in proc.stderr


def test_old_packer_is_refused(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", FAKE_PACKER_VERSION="1.6.6")
    assert proc.returncode == 1
    assert "Packer 1.6.6 is too old" in proc.stderr
    assert not any(c.startswith("packer build") for c in calls(fake))


def test_missing_credentials_are_named(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", FAKE_NO_CREDENTIALS="1")
    assert proc.returncode == 1
    assert "no usable AWS credentials" in proc.stderr
    assert ssm(fake) == {}


def test_failed_build_publishes_nothing(fake: dict[str, object]) -> None:
    proc = run(fake, "--region", "eu-west-1", FAKE_BUILD_FAIL="1")
    assert proc.returncode == 1
    assert "nothing was published" in proc.stderr
    assert ssm(fake) == {}


def test_bad_options(fake: dict[str, object]) -> None:
    assert run(fake, "--bogus").returncode == 2
    proc = run(fake)
    assert proc.returncode == 1 and "no region" in proc.stderr
    proc = run(fake, "--region", "eu-west-1", "--var", "novalue")
    assert proc.returncode == 1 and "--var needs NAME=VALUE" in proc.stderr
