"""platform.yaml's `host` section: the GPU host's names and paths live there once, and the CDK user
data, the Packer bake and the Ansible roles read them instead of repeating them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from synapscribe.cli import main
from synapscribe.platform import Host, PlatformConfigError, load_platform, parse_platform
from synapscribe_cdk.constructs.gpu_fleet import cloudwatch_agent_script, deploy_env_script

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_YAML = ROOT / "runtime" / "synapscribe" / "platform.yaml"
#: Where the host is built and launched from: the bake, the roles, the CDK app, the scripts, the runtime.
SCANNED = ("ami", "ansible", "cdk", "scripts", "runtime", "Makefile")
#: Prose (docs, READMEs) may name the values; every other text file (code, configuration, unit
#: files, whatever its suffix) must read them.
PROSE_SUFFIXES = {".md"}


def host_facts(host: Host) -> dict[str, str]:
    """Each literal of the host section, named by its key."""
    return {
        "host.config_dir": host.config_dir,
        "host.deploy_env_file": host.deploy_env_file,
        "host.deploy_env_file (name)": Path(host.deploy_env_file).name,
        "host.units.vllm": host.units.vllm,
        "host.units.tts": host.units.tts,
        "host.units.agentcore": host.units.agentcore,
        "host.venvs.runtime": host.venvs.runtime,
        "host.venvs.vllm": host.venvs.vllm,
        "host.root_device": host.root_device,
        "host.model_checksum_file": host.model_checksum_file,
        "host.model_revision_file": host.model_revision_file,
        "host.cloudwatch_agent.ctl": host.cloudwatch_agent.ctl,
        "host.cloudwatch_agent.config_template": host.cloudwatch_agent.config_template,
        "host.cloudwatch_agent.config": host.cloudwatch_agent.config,
    }


def _pattern(fact: str) -> re.Pattern[str]:
    # A whole value, not a part of a longer name (synapscribe-tts- as a temp-dir prefix, /dev/sda10);
    # a unit's template file in the repository (synapscribe-vllm.service.j2) is a file name, not a copy.
    return re.compile(rf"(?<![\w.-]){re.escape(fact)}(?![\w-]|\.service\.j2)")


def copies(files: list[Path], facts: dict[str, str]) -> list[tuple[str, str]]:
    """(where, which key) for each copy of a fact in the files."""
    found = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for key, fact in facts.items():
            for match in _pattern(fact).finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append((f"{where}:{line}: {fact}", key))
    return found


def _scanned_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *SCANNED],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split("\n")  # fmt: skip
    return [f for f in (ROOT / name for name in listed if name) if is_scanned(f)]


def is_scanned(path: Path) -> bool:
    """A text file (UTF-8, no NUL byte) that is not prose, not platform.yaml, not npm's."""
    if not path.is_file() or path == PLATFORM_YAML or path.suffix in PROSE_SUFFIXES:
        return False
    if "node_modules" in path.parts:
        return False
    data = path.read_bytes()
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_no_host_fact_is_copied_outside_the_platform_configuration() -> None:
    files = _scanned_files()
    # The scan sees the bake, the user data and the roles (a check over nothing would pass).
    assert {"synapscribe.pkr.hcl", "gpu_fleet.py", "hardening.conf.j2", "bake-ami"} <= {f.name for f in files}
    found = copies(files, host_facts(load_platform().host))
    assert not found, "host facts copied instead of read from platform.yaml host:\n" + "\n".join(
        f"{where} ({key})" for where, key in found
    )


def test_every_text_file_is_scanned_whatever_its_suffix(tmp_path: Path) -> None:
    """A host fact copied into a new kind of file (a drop-in .conf, a .service, a file without a
    suffix) is seen; prose and binary files are not read."""
    contents = {
        "override.conf": b"[Service]\nEnvironmentFile=/etc/synapscribe/deploy.env\n",
        "extra.service": b"ExecStart=/bin/true\n",
        "hook": b"#!/bin/sh\n",
        "notes.md": b"Prose may name /etc/synapscribe.\n",
        "blob.bin": b"\x00\x01\x02",
        "latin.txt": "caf\u00e9".encode("latin-1"),
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    scanned = {p.name for p in tmp_path.iterdir() if is_scanned(p)}
    assert scanned == {"override.conf", "extra.service", "hook"}
    found = {key for _, key in copies([tmp_path / "override.conf"], host_facts(load_platform().host))}
    assert "host.deploy_env_file" in found


def test_the_copy_check_finds_a_copy(tmp_path: Path) -> None:
    facts = host_facts(load_platform().host)
    planted = tmp_path / "user-data.sh"
    planted.write_text(
        "systemctl restart synapscribe-vllm.service\nrm -f /etc/synapscribe/deploy.env\n"
        "cd /x && sha256sum -c SHA256SUMS\ndevice=/dev/sda1\n"
        # Not copies: a longer name, a template's file name.
        "mktemp -d synapscribe-tts-XXXX\nsrc: synapscribe-tts.service.j2\n/dev/sda10\n"
    )
    found = {key for _, key in copies([planted], facts)}
    assert found == {
        "host.units.vllm",
        "host.config_dir",
        "host.deploy_env_file",
        "host.deploy_env_file (name)",
        "host.model_checksum_file",
        "host.root_device",
    }


def _host_data(**changes: Any) -> dict[str, Any]:
    data = load_platform().model_dump()
    data["host"].update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"deploy_env_file": "/etc/other/deploy.env"}, "must be in host.config_dir"),
        ({"units": {"vllm": "same", "tts": "same", "agentcore": "agentcore"}}, "must differ"),
        ({"venvs": {"runtime": "opt/relative", "vllm": "/opt/v"}}, "host.venvs.runtime"),
        ({"root_device": "sda1"}, "host.root_device"),
        ({"model_checksum_file": "../SUMS"}, "host.model_checksum_file"),
        ({"model_revision_file": "SHA256SUMS"}, "must differ"),
        ({"units": {"vllm": "v.service", "tts": "t", "agentcore": "a"}}, "host.units.vllm"),
        (
            {
                "cloudwatch_agent": {
                    "ctl": "/bin/ctl",
                    "config_template": "/tmp/a.json.in",
                    "config": "/etc/synapscribe/a.json",
                }
            },
            "host.cloudwatch_agent.config_template (/tmp/a.json.in) must be in host.config_dir",
        ),
        (
            {
                "cloudwatch_agent": {
                    "ctl": "/bin/ctl",
                    "config_template": "/etc/synapscribe/a.json",
                    "config": "/etc/synapscribe/a.json",
                }
            },
            "must differ",
        ),
    ],
)
def test_a_bad_host_section_is_refused_with_its_name(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlatformConfigError, match=re.escape(problem)):
        parse_platform(_host_data(**changes))


def test_the_user_data_follows_the_host_section() -> None:
    platform = parse_platform(
        _host_data(
            config_dir="/etc/lecture",
            deploy_env_file="/etc/lecture/boot.env",
            units={"vllm": "a-model", "tts": "b-speech", "agentcore": "c-agent"},
            cloudwatch_agent={
                "ctl": "/opt/agent/ctl",
                "config_template": "/etc/lecture/agent.json.in",
                "config": "/etc/lecture/agent.json",
            },
        )
    )
    host = platform.host
    agent = cloudwatch_agent_script(host, platform.fleet.log_groups, "dev")
    assert agent == [
        "sed -e 's/[{]env[}]/dev/g' /etc/lecture/agent.json.in > /etc/lecture/agent.json.tmp",
        "chmod 0644 /etc/lecture/agent.json.tmp",
        "mv /etc/lecture/agent.json.tmp /etc/lecture/agent.json",
        "/opt/agent/ctl -a fetch-config -m ec2 -c file:/etc/lecture/agent.json -s",
    ]
    script = "\n".join(deploy_env_script(host, {"AWS_REGION": "eu-west-1"}, agent))
    # The agent is configured after the deploy environment and before AgentCore's restart.
    assert script.index("mv /etc/lecture/boot.env.tmp") < script.index("/opt/agent/ctl")
    assert script.index("/opt/agent/ctl") < script.index("systemctl restart c-agent.service")
    assert "install -d -m 0755 /etc/lecture\n" in script
    assert (
        "cat > /etc/lecture/boot.env.tmp <<'SYNAPSCRIBE_ENV'\nAWS_REGION=eu-west-1\nSYNAPSCRIBE_ENV\n"
        in script
    )
    assert "mv /etc/lecture/boot.env.tmp /etc/lecture/boot.env\n" in script
    assert "systemctl enable a-model.service b-speech.service c-agent.service\n" in script
    assert script.endswith(
        "systemctl start a-model.service b-speech.service\nsystemctl restart c-agent.service"
    )
    assert "synapscribe" not in script.replace("SYNAPSCRIBE_ENV", "")


@pytest.mark.parametrize("environment", ["", "dev/prod", "a b", "x;rm -rf /", "{env}", "e" * 65])
def test_the_agent_lines_refuse_an_environment_no_log_group_name_can_hold(environment: str) -> None:
    platform = load_platform()
    with pytest.raises(ValueError, match="environment"):
        cloudwatch_agent_script(platform.host, platform.fleet.log_groups, environment)


def test_the_cli_shows_the_host_section_for_ansible_and_packer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platform", "--format", "json"]) == 0
    host = json.loads(capsys.readouterr().out)["host"]
    assert host == load_platform().host.model_dump()
    assert set(host) == {
        "config_dir",
        "deploy_env_file",
        "units",
        "venvs",
        "root_device",
        "model_checksum_file",
        "model_revision_file",
        "cloudwatch_agent",
    }
