"""The Packer template (ami/), read with python-hcl2: what the bake must do, checked without AWS."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
from synapscribe.platform import load_platform

AMI = Path(__file__).resolve().parents[2] / "ami"


def _load(name: str) -> dict[str, Any]:
    with (AMI / name).open(encoding="utf-8") as fh:
        return dict(hcl2.load(fh))


def _s(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ("\\"gp3\\""); strip that."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _load("synapscribe.pkr.hcl")


@pytest.fixture(scope="module")
def variables() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in _load("variables.pkr.hcl")["variable"]:
        for name, body in block.items():
            found[_s(name)] = body
    return found


@pytest.fixture(scope="module")
def source(template: dict[str, Any]) -> dict[str, Any]:
    (block,) = template["source"]
    (kind,) = block
    assert _s(kind) == "amazon-ebs"
    (body,) = block[kind].values()
    return dict(body)


@pytest.fixture(scope="module")
def build(template: dict[str, Any]) -> dict[str, Any]:
    (body,) = template["build"]
    return dict(body)


def test_requires_packer_1_11_and_the_plugins(template: dict[str, Any]) -> None:
    (packer,) = template["packer"]
    assert re.fullmatch(r">= ?1\.(1[1-9]|[2-9]\d)\.\d+", _s(packer["required_version"]))
    plugins = packer["required_plugins"][0]
    assert _s(plugins["amazon"]["source"]) == "github.com/hashicorp/amazon"
    assert _s(plugins["ansible"]["source"]) == "github.com/hashicorp/ansible"


def test_reads_the_shared_configuration(template: dict[str, Any]) -> None:
    (local_block,) = template["locals"]
    assert "runtime/synapscribe/platform.yaml" in local_block["platform"]
    assert "local.platform.vllm.version" in local_block["vllm_version"]
    assert "local.platform.model.id" in local_block["model_id"]
    platform = load_platform()
    text = (AMI / "synapscribe.pkr.hcl").read_text()
    for fact in (
        platform.model.id,
        platform.vllm.version,
        platform.model.path,
        str(platform.vllm.max_model_len),
    ):
        assert fact not in text, f"{fact} repeated in the template instead of read from platform.yaml"


def test_newest_canonical_noble(source: dict[str, Any]) -> None:
    (ami_filter,) = source["source_ami_filter"]
    assert [_s(o) for o in ami_filter["owners"]] == ["099720109477"]
    assert ami_filter["most_recent"] is True
    assert "ubuntu-noble-24.04-amd64-server" in _s(ami_filter["filters"]["name"])


def test_gpu_build_instance_and_encrypted_gp3(
    source: dict[str, Any], variables: dict[str, dict[str, Any]]
) -> None:
    assert source["instance_type"] == "${var.instance_type}"
    assert _s(variables["instance_type"]["default"]) == "g5.2xlarge"
    assert variables["volume_size_gb"]["default"] == 100
    (disk,) = source["launch_block_device_mappings"]
    assert _s(disk["volume_type"]) == "gp3"
    assert disk["encrypted"] is True
    assert disk["volume_size"] == "${var.volume_size_gb}"
    assert source["encrypt_boot"] is True


def test_imdsv2_only(source: dict[str, Any]) -> None:
    assert _s(source["imds_support"]) == "v2.0"
    (metadata,) = source["metadata_options"]
    assert _s(metadata["http_tokens"]) == "required"


def test_tags_record_what_was_baked(template: dict[str, Any], source: dict[str, Any]) -> None:
    (local_block,) = template["locals"]
    tags = local_block["tags"]
    for key, expr in {
        "GitRevision": "var.git_revision",
        "VllmVersion": "local.vllm_version",
        "Model": "local.model_id",
        "BuildTime": "local.build_time",
    }.items():
        assert expr in tags[key], key
    assert source["tags"] == "${local.tags}"
    assert source["snapshot_tags"] == "${local.tags}"


def test_variables(variables: dict[str, dict[str, Any]]) -> None:
    for name in ("region", "instance_type", "model_id", "model_revision", "hf_token", "vllm_version"):
        assert name in variables, name
    assert variables["hf_token"]["sensitive"] is True
    assert _s(variables["hf_token"]["default"]) == ""
    assert variables["vllm_version"]["validation"], "vllm_version is validated"


def _provisioners(build: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(_s(kind), body) for block in build["provisioner"] for kind, body in block.items()]


def test_ansible_runs_the_repository_playbook(build: dict[str, Any]) -> None:
    kinds = [kind for kind, _ in _provisioners(build)]
    assert "ansible" in kinds
    (ansible,) = [body for kind, body in _provisioners(build) if kind == "ansible"]
    assert _s(ansible["playbook_file"]).endswith("/../ansible/site.yml")
    args = " ".join(_s(a) for a in ansible["extra_arguments"])
    assert "jsonencode(" in args, "extra vars go as JSON so the switches are booleans"
    for switch in ("nvidia_enabled = true", "model_download_enabled = true", "vllm_install_enabled = true"):
        assert switch in args
    assert "synapscribe_max_model_len = local.max_model_len" in args


def test_validation_is_the_last_step(build: dict[str, Any]) -> None:
    kind, last = _provisioners(build)[-1]
    assert kind == "shell" and _s(last["name"]) == "validate"
    script = "\n".join(_s(line) for line in last["inline"])
    assert "nvidia-smi" in script
    assert "sha256sum --quiet --check SHA256SUMS" in script
    assert "systemctl is-enabled" in script and "join(" in script
    assert "ssh_host_*" in script
    assert "/var/lib/cloud/instance" in script
    kinds = [k for k, _ in _provisioners(build)]
    assert kinds.index("ansible") < len(kinds) - 1


def test_manifest(build: dict[str, Any]) -> None:
    (post,) = build["post-processor"]
    assert _s(next(iter(post))) == "manifest"


@pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed")
def test_packer_fmt() -> None:
    proc = subprocess.run(
        ["packer", "fmt", "-check", "-diff", str(AMI)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
