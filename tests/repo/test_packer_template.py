"""The Packer template (ami/), read with python-hcl2: what the bake must do, checked without AWS."""

from __future__ import annotations

import json
import re
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


def test_ansible_runs_the_repository_playbook(template: dict[str, Any], build: dict[str, Any]) -> None:
    kinds = [kind for kind, _ in _provisioners(build)]
    assert "ansible" in kinds
    (ansible,) = [body for kind, body in _provisioners(build) if kind == "ansible"]
    assert _s(ansible["playbook_file"]).endswith("/../ansible/site.yml")
    args = " ".join(_s(a) for a in ansible["extra_arguments"])
    assert "jsonencode(local.ansible_vars)" in args, "extra vars go as JSON so the switches are booleans"
    (local_block,) = template["locals"]
    extra = local_block["ansible_vars"]
    for switch in ("nvidia_enabled = true", "model_download_enabled = true", "vllm_install_enabled = true"):
        assert switch in extra
    assert "synapscribe_max_model_len = local.max_model_len" in extra
    assert "model_revision = local.model_revision" in extra


SCRIPTS = AMI / "scripts"


def _shell_step(build: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    (found,) = [
        (i, body)
        for i, (kind, body) in enumerate(_provisioners(build))
        if kind == "shell" and _s(body.get("name")) == name
    ]
    return found


def _script_lines(name: str) -> list[str]:
    return [line.strip() for line in (SCRIPTS / name).read_text().splitlines()]


def _has_line(lines: list[str], pattern: str) -> bool:
    return any(re.search(pattern, line) for line in lines)


@pytest.mark.parametrize(("step", "script"), [("cleanup", "cleanup.sh"), ("validate", "validate.sh")])
def test_cleanup_and_validation_are_scripts_run_as_root(
    build: dict[str, Any], step: str, script: str
) -> None:
    _, body = _shell_step(build, step)
    assert "inline" not in body
    assert _s(body["script"]) == f"${{path.root}}/scripts/{script}"
    assert (SCRIPTS / script).stat().st_mode & 0o111, f"{script} is executable"
    assert body["environment_vars"] == "${local.script_env}"
    assert body["execute_command"] == "${local.script_execute_command}"
    assert "set -euo pipefail" in _script_lines(script), f"{script}: a failing command fails the bake"


def test_the_scripts_get_the_host_facts_from_the_platform(template: dict[str, Any]) -> None:
    (local_block,) = template["locals"]
    assert (
        _s(local_block["script_execute_command"]) == "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    )
    env = dict(_s(item).split("=", 1) for item in local_block["script_env"])
    assert env == {
        "SYNAPSCRIBE_UNITS": '${join(" ", local.units)}',
        "SYNAPSCRIBE_VLLM_UNIT": "${local.host.units.vllm}",
        "SYNAPSCRIBE_DEPLOY_ENV_FILE": "${local.host.deploy_env_file}",
        "BUILD_USER": "${local.build_user}",
        "SYNAPSCRIBE_MAX_MODEL_LEN": "${local.max_model_len}",
        "SYNAPSCRIBE_VLLM_VENV": "${local.host.venvs.vllm}",
        "SYNAPSCRIBE_VLLM_VERSION": "${local.vllm_version}",
        "SYNAPSCRIBE_MODEL_ID": "${local.model_id}",
        "SYNAPSCRIBE_MODEL_PATH": "${local.model_path}",
        "SYNAPSCRIBE_MODEL_REVISION": "${local.model_revision}",
        "SYNAPSCRIBE_MODEL_CHECKSUM_FILE": "${local.host.model_checksum_file}",
        "SYNAPSCRIBE_MODEL_REVISION_FILE": "${local.host.model_revision_file}",
        "SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE": "${local.host.cloudwatch_agent.config_template}",
        "SYNAPSCRIBE_AGENT_CONFIG": "${local.host.cloudwatch_agent.config}",
    }
    # Every check runs in the bake: the switches the host tests use are never turned off here.
    assert not [name for name in env if name.startswith("VALIDATE_")]
    # The user whose key cleanup.sh removes is the one Packer and Ansible connect as.
    assert _s(local_block["build_user"]) == "ubuntu"


def test_validation_is_the_last_step(build: dict[str, Any]) -> None:
    index, _ = _shell_step(build, "validate")
    kinds = [k for k, _ in _provisioners(build)]
    assert index == len(kinds) - 1
    assert kinds.index("ansible") < index


# Each check the bake must not lose, as a pattern over validate.sh's lines.
VALIDATION_CHECKS = {
    "the driver is loaded": r"lsmod \| grep -q '\^nvidia ' &&$",
    "nvidia-smi sees the GPU": r"^nvidia-smi --query-gpu=\S+ --format=csv,noheader \| grep -q \.$",
    "the weights are read-only": r'stat -c %U:%a "\$SYNAPSCRIBE_MODEL_PATH"\)" = root:555 \]',
    "the weights match their checksums": (
        r'cd "\$SYNAPSCRIBE_MODEL_PATH" && sha256sum --quiet --check "\$SYNAPSCRIBE_MODEL_CHECKSUM_FILE"'
    ),
    "the vLLM version": r'SYNAPSCRIBE_VLLM_VENV/bin/python" -c \'import vllm; print\(vllm\.__version__\)\'\)" = "\$1" \]',
    "the units are enabled": r"^\[ \"\$state\" = enabled \]",
    "the context length": (
        r'grep -q -- "--max-model-len \$SYNAPSCRIBE_MAX_MODEL_LEN" "/etc/systemd/system/\$SYNAPSCRIBE_VLLM_UNIT\.service"'
    ),
    "no SSH host keys": r"find /etc/ssh -name 'ssh_host_\*'",
    "no cloud-init state": r"\[ ! -e /var/lib/cloud/instance \] && \[ -z .*ls -A /var/lib/cloud/instances",
    "no deploy env file": r'^check .* test ! -e "\$SYNAPSCRIBE_DEPLOY_ENV_FILE"$',
    "the agent's template": r'^check .* test -s "\$SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE"$',
    "no environment's agent configuration": r'^check .* test ! -e "\$SYNAPSCRIBE_AGENT_CONFIG"$',
    "the model commit": r'^revision=\$\(cat "\$SYNAPSCRIBE_MODEL_PATH/\$SYNAPSCRIBE_MODEL_REVISION_FILE"\)',
    "the commit is a sha": r"^if ! \[\[ \$revision =~ \^\[0-9a-f\]\{40\}\$ \]\]; then$",
    "a pinned commit is the one baked": (
        r'\[\[ \$SYNAPSCRIBE_MODEL_REVISION =~ \^\[0-9a-f\]\{40\}\$ \]\] && \[ "\$revision" != "\$SYNAPSCRIBE_MODEL_REVISION" \]'
    ),
    "the commit is printed": r"^printf 'validate: model %s@%s",
    "no authorized_keys": r'for file in "\$home/\.ssh/authorized_keys" /root/\.ssh/authorized_keys; do$',
    "a failed check fails the bake": r"^exit 1$",
}


@pytest.mark.parametrize("check", sorted(VALIDATION_CHECKS))
def test_validation_checks(check: str) -> None:
    assert _has_line(_script_lines("validate.sh"), VALIDATION_CHECKS[check]), (
        f"validation no longer checks {check}"
    )


def test_validation_checks_every_unit(template: dict[str, Any]) -> None:
    (local_block,) = template["locals"]
    assert local_block["host"] == "${local.platform.host}"
    assert [_s(u) for u in local_block["units"]] == [
        "${local.host.units.vllm}",
        "${local.host.units.tts}",
        "${local.host.units.agentcore}",
    ]


def test_pinned_model_commit_is_known_up_front(template: dict[str, Any]) -> None:
    (local_block,) = template["locals"]
    assert 'regex("^[0-9a-f]{40}$", local.model_revision)' in local_block["model_revision_pinned"]


def test_cleanup_before_validation(build: dict[str, Any]) -> None:
    cleanup, _ = _shell_step(build, "cleanup")
    validate, _ = _shell_step(build, "validate")
    assert cleanup == validate - 1
    lines = _script_lines("cleanup.sh")
    for needed in (
        'systemctl stop "${units[i]}"',
        'rm -f "$SYNAPSCRIBE_DEPLOY_ENV_FILE"',
        "cloud-init clean --logs --seed",
        "rm -f /etc/ssh/ssh_host_*",
        "truncate -s 0 /etc/machine-id",
        'rm -f "$home/.ssh/authorized_keys" /root/.ssh/authorized_keys',
        "journalctl --vacuum-time=1s",
    ):
        assert needed in lines, needed


def test_model_commit_is_downloaded_after_ansible(template: dict[str, Any], build: dict[str, Any]) -> None:
    provisioners = _provisioners(build)
    kinds = [k for k, _ in provisioners]
    (download,) = [b for k, b in provisioners if k == "file"]
    assert _s(download["direction"]) == "download"
    assert download["source"] == "${local.model_revision_file}"
    assert download["destination"] == "${local.model_revision_local_file}"
    assert kinds.index("ansible") < kinds.index("file")
    (local_block,) = template["locals"]
    assert _s(local_block["model_revision_file"]) == "${local.model_path}/${local.host.model_revision_file}"
    assert _s(local_block["model_revision_local_file"]) == "${path.root}/model-revision.txt"


def test_ansible_gets_the_nvidia_pins_only_when_set(
    template: dict[str, Any], variables: dict[str, dict[str, Any]]
) -> None:
    # The repository key's fingerprint is pinned in the role; the variable only overrides it.
    key = variables["nvidia_repo_key_fingerprint"]
    assert _s(key["default"]) == ""
    assert "^[0-9A-Fa-f]{40}$" in json.dumps(key["validation"])
    assert not [name for name in variables if "keyring" in name or "checksum" in name]
    (local_block,) = template["locals"]
    merged = local_block["ansible_vars"]
    assert (
        'var.nvidia_repo_key_fingerprint != ""' in merged
        and "nvidia_repo_key_fingerprint = var.nvidia_repo_key_fingerprint" in merged
    )
    assert 'var.nvidia_driver_branch != ""' in merged


def test_manifest(build: dict[str, Any]) -> None:
    (post,) = build["post-processor"]
    (kind,) = post
    assert _s(kind) == "manifest"
    body = post[kind]
    assert _s(body["output"]) == "${path.root}/manifest.json", "scripts/bake-ami reads ami/manifest.json"
    assert body["strip_path"] is True
    custom = body["custom_data"]
    assert {
        k: custom[k]
        for k in ("git_revision", "vllm_version", "model", "model_revision", "max_model_len", "build_time")
    } == {
        "git_revision": "${var.git_revision}",
        "vllm_version": "${local.vllm_version}",
        "model": "${local.model_id}",
        "model_revision": "${local.model_revision}",
        "max_model_len": "${local.max_model_len}",
        "build_time": "${local.build_time}",
    }
    # The resolved commit: known up front when a commit is pinned, filled in by scripts/bake-ami otherwise.
    assert custom["model_commit"] == '${local.model_revision_pinned ? local.model_revision : ""}'
    assert _s(custom["model_revision_file"]) == "model-revision.txt"


@pytest.mark.needs_tool("packer")
def test_packer_fmt() -> None:
    proc = subprocess.run(
        ["packer", "fmt", "-check", "-diff", str(AMI)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_context_modes_come_from_the_platform(template: dict[str, Any]) -> None:
    platform = load_platform()
    for name in ("synapscribe.pkr.hcl", "variables.pkr.hcl"):
        text = (AMI / name).read_text()
        for length in {platform.vllm.max_model_len, platform.model.max_position_embeddings}:
            assert str(length) not in text, (
                f"{length} repeated in ami/{name} instead of read from platform.yaml"
            )
    (local_block,) = template["locals"]
    modes = local_block["context_lengths"]
    assert "local.platform.vllm.max_model_len" in modes
    assert "local.platform.model.max_position_embeddings" in modes
    knob = local_block["max_model_len"]
    assert "contains(local.context_lengths, var.max_model_len)" in knob and "file(" in knob
