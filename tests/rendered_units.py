"""The Ansible templates as site.yml renders them (its own platform lookup and the roles' defaults),
rendered locally with ansible-playbook: what the unit tests check and the engine tests run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent

# Template (under roles/) -> file name in the destination directory.
TEMPLATES = {
    "vllm/templates/synapscribe-vllm.service.j2": "vllm.service",
    "agentcore/templates/agentcore.env.j2": "agentcore.env",
}
RENDER_TASKS = [
    {
        "name": f"Read {role} defaults",
        "ansible.builtin.include_vars": {"file": str(ANSIBLE / f"roles/{role}/defaults/main.yml")},
    }
    for role in ("base", "vllm", "tts", "agentcore")
]


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    }


def _render_task(src: str, out: Path) -> dict[str, object]:
    """A unit through the common role's systemd_unit entry point (where its template finds the
    shared hardening.conf.j2), into `out`; any other template directly."""
    if out.suffix == ".service":
        return {
            "name": f"Render {out.name}",
            "ansible.builtin.include_role": {"name": "common", "tasks_from": "systemd_unit"},
            "vars": {
                "common_unit_name": out.stem,
                "common_unit_template": str(ANSIBLE / "roles" / src),
                "common_unit_dir": str(out.parent),
                # Rendered by whoever runs the tests: no chown to root.
                "common_unit_owner": "{{ omit }}",
            },
        }
    return {
        "name": f"Render {out.name}",
        "ansible.builtin.template": {"src": str(ANSIBLE / "roles" / src), "dest": str(out), "mode": "0644"},
    }


def render_templates(
    dest: Path, *extra: str, templates: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """site.yml's play with its platform lookup, rendering `templates` (TEMPLATES unless given) into
    `dest` (extra: ansible args)."""
    (play,) = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    render = {
        "name": "Render the context-dependent files",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**play["vars"], "synapscribe_repo_dir": str(ROOT)},
        "pre_tasks": play["pre_tasks"],
        "tasks": RENDER_TASKS
        + [_render_task(src, dest / out) for src, out in (templates or TEMPLATES).items()],
    }
    playbook = dest / "render.yml"
    playbook.write_text(yaml.safe_dump([render]))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook), *extra],
        cwd=ANSIBLE, env=ansible_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _logical_lines(unit: str) -> list[str]:
    return unit.replace("\\\n", " ").splitlines()


def exec_start(unit: str) -> list[str]:
    """A unit's ExecStart split the way systemd does (continuation lines joined)."""
    (line,) = [ln for ln in _logical_lines(unit) if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def environment(unit: str) -> dict[str, str]:
    """A unit's Environment= settings (one assignment a line, as the templates write them)."""
    lines = [ln.removeprefix("Environment=") for ln in _logical_lines(unit) if ln.startswith("Environment=")]
    return dict(line.split("=", 1) for line in lines)
