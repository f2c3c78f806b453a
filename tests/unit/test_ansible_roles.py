"""The Ansible roles without a host: lint (production profile), syntax, one source of facts, and the
context-length knob rendered through site.yml's own platform lookup."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from synapscribe.platform import load_platform

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
ROLES = ("base", "nvidia", "model", "vllm", "runtime", "tts", "agentcore")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    }


def test_ansible_lint_production_profile() -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_site_syntax() -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/localhost.yml", "site.yml"],
        cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role: str) -> None:
    base = ANSIBLE / "roles" / role
    for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
        assert (base / part).is_file(), f"{role}/{part}"
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    for name in defaults:
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with the role name"
        assert name in spec, f"{role}: {name} missing from meta/argument_specs.yml"


def test_no_shared_fact_repeated_in_the_roles() -> None:
    platform = load_platform()
    facts = {
        str(platform.ports.agentcore), str(platform.ports.vllm), str(platform.ports.tts),
        str(platform.vllm.max_model_len), str(platform.vllm.gpu_memory_utilization),
        str(platform.vllm.max_num_batched_tokens), platform.vllm.version, platform.model.id,
        platform.model.path, platform.model.served_name,
    }  # fmt: skip
    for path in ANSIBLE.rglob("*"):
        if not path.is_file() or path.suffix not in {".yml", ".j2", ".cfg", ""}:
            continue
        text = path.read_text()
        for fact in facts:
            assert not re.search(rf"(?<![\w.]){re.escape(fact)}(?![\w.])", text), f"{fact} repeated in {path}"


RENDER_TASKS = [
    {
        "name": f"Read {role} defaults",
        "ansible.builtin.include_vars": {"file": str(ANSIBLE / f"roles/{role}/defaults/main.yml")},
    }
    for role in ("base", "vllm", "tts", "agentcore")
]


def _render(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """site.yml's play with its platform lookup, rendering the dependent templates locally."""
    (play,) = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    templates = {
        "vllm/templates/synapscribe-vllm.service.j2": "vllm.service",
        "agentcore/templates/agentcore.env.j2": "agentcore.env",
    }
    render = {
        "name": "Render the context-dependent files",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**play["vars"], "synapscribe_repo_dir": str(ROOT)},
        "pre_tasks": play["pre_tasks"],
        "tasks": RENDER_TASKS
        + [
            {
                "name": f"Render {out}",
                "ansible.builtin.template": {
                    "src": str(ANSIBLE / "roles" / src),
                    "dest": str(tmp_path / out),
                    "mode": "0644",
                },
            }
            for src, out in templates.items()
        ],
    }
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([render]))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook), *extra],
        cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _exec_start(unit: str) -> list[str]:
    (line,) = [ln for ln in unit.replace("\\\n", " ").splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.parametrize("max_model_len", [None, 32768])
def test_context_knob_changes_every_dependent_place(tmp_path: Path, max_model_len: int | None) -> None:
    extra = ["-e", f"synapscribe_max_model_len={max_model_len}"] if max_model_len else []
    proc = _render(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    platform = load_platform().with_max_model_len(max_model_len) if max_model_len else load_platform()
    argv = _exec_start((tmp_path / "vllm.service").read_text())
    assert argv[argv.index("--max-model-len") + 1] == str(platform.vllm.max_model_len)
    limit = json.loads(argv[argv.index("--limit-mm-per-prompt") + 1])
    assert limit == {"audio": platform.max_audio_items_per_prompt}
    env = (tmp_path / "agentcore.env").read_text()
    assert f"SYNAPSCRIBE_MAX_MODEL_LEN={platform.vllm.max_model_len}\n" in env
    assert f"VLLM_MODEL={platform.model.served_name}\n" in env


def test_context_knob_rejects_what_the_model_cannot_hold(tmp_path: Path) -> None:
    proc = _render(tmp_path, "-e", "synapscribe_max_model_len=65536")
    assert proc.returncode != 0
    assert "max_model_len" in proc.stdout + proc.stderr
    assert not (tmp_path / "vllm.service").exists()
