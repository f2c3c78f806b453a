"""The Ansible roles without a host: lint (production profile), syntax, one source of facts, and the
context-length knob rendered through site.yml's own platform lookup."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rendered_units import ansible_env as _env
from rendered_units import exec_start as _exec_start
from rendered_units import render_templates
from synapscribe.platform import ENV_PLACEHOLDER, load_platform

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
ROLES = ("base", "nvidia", "model", "vllm", "runtime", "tts", "agentcore", "cloudwatch_agent")


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


def _render(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return render_templates(tmp_path, *extra)


@pytest.mark.parametrize("max_model_len", [None, 32768])
def test_context_knob_changes_every_dependent_place(tmp_path: Path, max_model_len: int | None) -> None:
    extra = ["-e", f"synapscribe_max_model_len={max_model_len}"] if max_model_len else []
    proc = _render(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    platform = load_platform().with_max_model_len(max_model_len) if max_model_len else load_platform()
    argv = _exec_start((tmp_path / "vllm.service").read_text())
    assert argv[argv.index("--max-model-len") + 1] == str(platform.vllm.max_model_len)
    limit = json.loads(argv[argv.index("--limit-mm-per-prompt") + 1])
    # Audio only: image and video off, so the encoder cache is sized by --max-num-batched-tokens.
    assert limit == {"audio": platform.max_audio_items_per_prompt, "image": 0, "video": 0}
    # The processor cache holds vllm.processor_cache_lectures lectures of the longest audio length.
    assert float(argv[argv.index("--mm-processor-cache-gb") + 1]) == platform.mm_processor_cache_gb
    env = (tmp_path / "agentcore.env").read_text()
    assert f"SYNAPSCRIBE_MAX_MODEL_LEN={platform.vllm.max_model_len}\n" in env
    assert f"VLLM_MODEL={platform.model.served_name}\n" in env


def test_context_knob_rejects_what_the_model_cannot_hold(tmp_path: Path) -> None:
    proc = _render(tmp_path, "-e", "synapscribe_max_model_len=65536")
    assert proc.returncode != 0
    assert "max_model_len" in proc.stdout + proc.stderr
    assert not (tmp_path / "vllm.service").exists()


def _yaml_files(role: str, part: str) -> list[Path]:
    return sorted((ANSIBLE / "roles" / role / part).glob("*.yml"))


def _tasks(path: Path) -> list[dict[str, Any]]:
    """The tasks of a tasks/handlers file, with the tasks inside block/rescue/always."""
    found: list[dict[str, Any]] = []
    pending = list(yaml.safe_load(path.read_text()) or [])
    while pending:
        task = pending.pop(0)
        found.append(task)
        for key in ("block", "rescue", "always"):
            pending.extend(task.get(key) or [])
    return found


def _notified(role: str) -> set[str]:
    names: set[str] = set()
    for part in ("tasks", "handlers"):
        for path in _yaml_files(role, part):
            for task in _tasks(path):
                # A unit installed through the common role notifies the handlers the role passes it.
                notify = task.get("notify") or (task.get("vars") or {}).get("common_unit_notify") or []
                names.update([notify] if isinstance(notify, str) else notify)
    return names


def _handler_names(role: str) -> set[str]:
    path = ANSIBLE / "roles" / role / "handlers" / "main.yml"
    if not path.is_file():
        return set()
    names: set[str] = set()
    for handler in _tasks(path):
        names.add(handler["name"])
        listen = handler.get("listen") or []
        names.update([listen] if isinstance(listen, str) else listen)
    return names


def _dependents(role: str) -> set[str]:
    """Roles that list `role` in their meta dependencies (their handlers are in the same play)."""
    found = set()
    for other in ROLES:
        meta = yaml.safe_load((ANSIBLE / "roles" / other / "meta" / "main.yml").read_text()) or {}
        deps = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies") or []]
        if role in deps:
            found.add(other)
    return found


@pytest.mark.parametrize("role", ROLES)
def test_notified_handlers_exist_in_the_role(role: str) -> None:
    notified = _notified(role)
    if not notified:
        return
    assert (ANSIBLE / "roles" / role / "handlers" / "main.yml").is_file(), f"{role} notifies {notified}"
    own = _handler_names(role)
    reachable = own.union(*(_handler_names(other) for other in _dependents(role)))
    missing = notified - reachable
    assert not missing, f"{role} notifies {sorted(missing)}, which no handler of it or its dependents defines"
    assert notified & own, f"{role}'s handlers/main.yml defines none of the handlers it notifies"


def test_handler_check_sees_every_role_that_notifies() -> None:
    notifying = {role for role in ROLES if _notified(role)}
    assert {"nvidia", "model", "vllm", "tts", "agentcore"} <= notifying


UNITS = {"vllm": "vllm_service", "tts": "tts_service", "agentcore": "agentcore_service"}


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_templates_are_installed_as_systemd_units(role: str) -> None:
    template = ANSIBLE / "roles" / role / "templates" / f"synapscribe-{role}.service.j2"
    assert template.is_file(), template
    unit = template.read_text()
    for line in ("[Unit]", "[Service]", "[Install]", "WantedBy=multi-user.target", "Restart=on-failure"):
        assert line in unit, f"{template.name}: {line}"
    assert re.search(r"^ExecStart=\S", unit, re.M), f"{template.name}: ExecStart"
    assert re.search(r"^User=\S", unit, re.M), f"{template.name}: runs as a dedicated user"
    # Installed through the shared common role (whose hardening.conf.j2 the template includes).
    installs = [
        t
        for path in _yaml_files(role, "tasks")
        for t in _tasks(path)
        if t.get("ansible.builtin.include_role") == {"name": "common", "tasks_from": "systemd_unit"}
    ]
    (task,) = [t for t in installs if t["vars"]["common_unit_template"] == template.name]
    assert task["vars"]["common_unit_name"] == f"{{{{ {UNITS[role]} }}}}"
    assert task["vars"]["common_unit_notify"], f"{role}: a changed unit notifies a handler"
    defaults = yaml.safe_load((ANSIBLE / "roles" / role / "defaults" / "main.yml").read_text())
    # The unit's name is platform.yaml's (host.units), shared with the bake and the user data.
    assert defaults[UNITS[role]] == f"{{{{ synapscribe_platform.host.units.{role} }}}}"


COMMON = ANSIBLE / "roles" / "common"


def test_common_installs_units_where_systemd_reads_them() -> None:
    (task,) = _tasks(COMMON / "tasks" / "systemd_unit.yml")
    template = task["ansible.builtin.template"]
    assert template["dest"] == "{{ common_unit_dir }}/{{ common_unit_name }}.service"
    assert (template["owner"], template["group"], template["mode"]) == (
        "{{ common_unit_owner }}",
        "{{ common_unit_owner }}",
        "0644",
    )
    assert task["notify"] == "{{ common_unit_notify }}"
    defaults = yaml.safe_load((COMMON / "defaults" / "main.yml").read_text())
    assert defaults == {
        "common_unit_dir": "/etc/systemd/system",
        "common_unit_owner": "root",
        "common_unit_notify": [],
    }
    spec = yaml.safe_load((COMMON / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = spec["systemd_unit"]["options"]
    used = set(re.findall(r"\bcommon_\w+", (COMMON / "tasks" / "systemd_unit.yml").read_text()))
    assert used == set(options), "every variable of the entry point is in its argument spec, and no other"
    assert {name for name, o in options.items() if o.get("required")} == {
        "common_unit_name",
        "common_unit_template",
    }
    assert all(options[name]["default"] == value for name, value in defaults.items())


def test_the_unit_hardening_lives_once_and_every_unit_carries_it(tmp_path: Path) -> None:
    copies = sorted(p.relative_to(ANSIBLE) for p in ANSIBLE.rglob("hardening.conf.j2"))
    assert copies == [Path("roles/common/templates/hardening.conf.j2")]
    hardening = (COMMON / "templates" / "hardening.conf.j2").read_text().splitlines()
    assert "NoNewPrivileges=true" in hardening and "CapabilityBoundingSet=" in hardening
    units = {f"{role}/templates/synapscribe-{role}.service.j2": f"{role}.service" for role in sorted(UNITS)}
    proc = render_templates(tmp_path, templates=units)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for out in units.values():
        lines = (tmp_path / out).read_text().splitlines()
        start = lines.index(hardening[0])
        assert lines[start : start + len(hardening)] == hardening, f"{out}: the hardening block"


NVIDIA_ROLE = ANSIBLE / "roles" / "nvidia"
NVIDIA_KEY_FINGERPRINT = "EB693B3035CD5710E231E123A4B469963BF863CC"


def _flat_tasks(path: Path) -> list[dict[str, Any]]:
    """The tasks of a role's tasks file in run order, with imported/included task files expanded."""
    found: list[dict[str, Any]] = []
    for task in _tasks(path):
        found.append(task)
        for key in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks"):
            if key in task:
                found.extend(_flat_tasks(path.parent / task[key]))
    return found


def _index(tasks: list[dict[str, Any]], module: str, **where: Any) -> int:
    (index,) = [
        i
        for i, task in enumerate(tasks)
        if module in task and all(task[module].get(k) == v for k, v in where.items())
    ]
    return index


def test_nvidia_driver_branch_is_pinned() -> None:
    defaults = yaml.safe_load((NVIDIA_ROLE / "defaults" / "main.yml").read_text())
    assert re.fullmatch(r"\d{3}", str(defaults["nvidia_driver_branch"]))
    packages = defaults["nvidia_driver_packages"]
    assert "nvidia-open-{{ nvidia_driver_branch }}" in packages, packages
    assert not [p for p in packages if re.fullmatch(r"nvidia-(open|driver)", p)], "an unpinned meta package"
    tasks = _flat_tasks(NVIDIA_ROLE / "tasks" / "install.yml")
    checks = " ".join(json.dumps(t.get("ansible.builtin.assert", {})) for t in tasks)
    assert "nvidia_driver_branch | string is match('^[0-9]{3}$')" in checks
    assert "nvidia_driver_branch" in checks.split("nvidia_smi", 1)[-1], (
        "the running driver's branch is checked"
    )


def test_nvidia_repository_key_is_pinned_and_verified_before_the_repository_is_added() -> None:
    defaults = yaml.safe_load((NVIDIA_ROLE / "defaults" / "main.yml").read_text())
    assert defaults["nvidia_repo_key_fingerprint"] == NVIDIA_KEY_FINGERPRINT
    assert (defaults["nvidia_repo_distribution"], defaults["nvidia_repo_arch"]) == ("ubuntu2404", "x86_64")
    assert defaults["nvidia_repo_url"] == (
        "https://developer.download.nvidia.com/compute/cuda/repos/"
        "{{ nvidia_repo_distribution }}/{{ nvidia_repo_arch }}/"
    )
    assert defaults["nvidia_repo_key_url"] == "{{ nvidia_repo_url }}3bf863cc.pub"
    # NVIDIA's .pub is ASCII-armoured: apt's Signed-By reads such a file only with the .asc suffix.
    assert defaults["nvidia_repo_key_file"].startswith("/etc/apt/keyrings/")
    assert defaults["nvidia_repo_key_file"].endswith(".asc")
    assert "gpg" in defaults["nvidia_repo_tool_packages"]
    assert "python3-debian" in defaults["nvidia_repo_tool_packages"]
    spec = yaml.safe_load((NVIDIA_ROLE / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["nvidia_repo_key_fingerprint"]["default"] == (
        NVIDIA_KEY_FINGERPRINT
    )

    tasks = _flat_tasks(NVIDIA_ROLE / "tasks" / "install.yml")
    tools = _index(tasks, "ansible.builtin.apt", name="{{ nvidia_repo_tool_packages }}")
    download = _index(tasks, "ansible.builtin.get_url", url="{{ nvidia_repo_key_url }}")
    assert tasks[download]["ansible.builtin.get_url"]["dest"] == "{{ nvidia_repo_key_download }}"
    (listing,) = [
        i
        for i, t in enumerate(tasks)
        if isinstance(t.get("ansible.builtin.command"), dict)
        and "--show-keys" in t["ansible.builtin.command"].get("argv", [])
    ]
    argv = tasks[listing]["ansible.builtin.command"]["argv"]
    assert argv[0] == "gpg" and "--with-colons" in argv and argv[-1] == "{{ nvidia_repo_key_download }}"
    assert tasks[listing]["changed_when"] is False
    (check,) = [
        i
        for i, t in enumerate(tasks)
        if "nvidia_repo_key_fingerprint" in json.dumps(t.get("ansible.builtin.assert", {}).get("that"))
    ]
    that = tasks[check]["ansible.builtin.assert"]["that"]
    assert "nvidia_repo_key_primaries | length == 1" in that
    assert "nvidia_repo_key_primaries[0] == nvidia_repo_key_fingerprint | upper" in that
    primaries = tasks[check]["vars"]["nvidia_repo_key_primaries"]
    assert f"{tasks[listing]['register']}.stdout" in primaries, "the check reads gpg's listing"
    assert "nvidia_repo_key_fingerprint" in tasks[check]["ansible.builtin.assert"]["fail_msg"]
    trust = _index(tasks, "ansible.builtin.copy", dest="{{ nvidia_repo_key_file }}")
    assert tasks[trust]["ansible.builtin.copy"]["src"] == "{{ nvidia_repo_key_download }}"
    assert tasks[trust]["ansible.builtin.copy"]["remote_src"] is True
    repo = _index(tasks, "ansible.builtin.deb822_repository", signed_by="{{ nvidia_repo_key_file }}")
    repository = tasks[repo]["ansible.builtin.deb822_repository"]
    assert repository["uris"] == ["{{ nvidia_repo_url }}"] and repository["suites"] == ["/"]
    assert "components" not in repository, "a flat repository (suite '/') has no components"
    install = next(
        i
        for i, t in enumerate(tasks)
        if "nvidia_driver_packages" in json.dumps(t.get("ansible.builtin.apt", {}).get("name"))
    )
    assert tools < listing and download < listing < check < trust < repo < install, (
        "the key is verified before it is trusted and before the repository is added"
    )
    # Nothing else writes to apt's trust or sources.
    for task in tasks:
        assert "deb" not in task.get("ansible.builtin.apt", {}), "no .deb installed to add the repository"
        assert "ansible.builtin.apt_key" not in task and "ansible.builtin.apt_repository" not in task


def test_no_keyring_checksum_placeholder_remains() -> None:
    gone = re.compile(r"nvidia_keyring|cuda-keyring|checksum:\s*[\"']{2}")
    this = Path(__file__).resolve()
    places = [NVIDIA_ROLE, ROOT / "ami", ROOT / "docs", ROOT / "README.md", ROOT / "scripts", ROOT / "tests"]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*"))]
    for path in files:
        if not path.is_file() or path.resolve() == this or path.suffix in {".pyc", ".json"}:
            continue
        text = path.read_text(errors="replace")
        assert not gone.search(text), f"{path} still mentions the cuda-keyring checksum"
    for path in NVIDIA_ROLE.rglob("*.yml"):
        if path.parent.name == "tasks":
            assert "checksum" not in path.read_text(), f"{path}: the key is verified by fingerprint"


def _gpg(home: Path, *args: str) -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout


def _new_key(home: Path, uid: str) -> tuple[str, str]:
    """A fresh signing key in its own home: (fingerprint, ASCII-armoured public key)."""
    home.mkdir(mode=0o700)
    try:
        _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d")
    finally:
        # Key generation starts a gpg-agent for this home; it must not outlive the test.
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30, check=False)
    (fingerprint,) = re.findall(r"^fpr:+([0-9A-F]{40}):", _gpg(home, "--with-colons", "--list-keys"), re.M)
    return fingerprint, _gpg(home, "--armor", "--export")


@pytest.mark.needs_tool("gpg", "gpgconf")
def test_nvidia_key_check_accepts_only_the_pinned_key(tmp_path: Path) -> None:
    """The role's own verify_key.yml against real OpenPGP keys, one ansible-playbook run for all cases."""
    pinned, pinned_key = _new_key(tmp_path / "gpg-a", "Pinned <a@example.com>")
    other, other_key = _new_key(tmp_path / "gpg-b", "Other <b@example.com>")
    cases = {
        "pinned": (pinned_key, pinned),
        "pinned-lowercase": (pinned_key, pinned.lower()),
        "other-key": (other_key, pinned),
        "default-pin": (pinned_key, NVIDIA_KEY_FINGERPRINT),
        "two-keys": (pinned_key + other_key, pinned),
        "not-a-key": ("<html>404 Not Found</html>\n", pinned),
        "malformed-pin": (pinned_key, pinned[:-1]),
    }
    plays = []
    for case, (content, fingerprint) in cases.items():
        key = tmp_path / case / "key.pub"
        key.parent.mkdir()
        key.write_text(content)
        result = str(tmp_path / f"{case}.result")
        plays.append({
            "name": case, "hosts": "localhost", "connection": "local", "gather_facts": False,
            "vars": {
                "nvidia_repo_key_url": f"https://example.invalid/{case}.pub",
                "nvidia_repo_key_download": str(key),
                "nvidia_repo_key_fingerprint": fingerprint,
            },
            "tasks": [{
                "name": "Check", "block": [
                    {"name": "Verify", "ansible.builtin.import_tasks": str(NVIDIA_ROLE / "tasks" / "verify_key.yml")},
                    {"name": "Passed", "ansible.builtin.copy": {"content": "ok", "dest": result, "mode": "0644"}},
                ],
                "rescue": [{"name": "Failed", "ansible.builtin.copy": {
                    "content": "{{ ansible_failed_result.msg }}", "dest": result, "mode": "0644"}}],
            }],
        })  # fmt: skip
    playbook = tmp_path / "verify.yml"
    playbook.write_text(yaml.safe_dump(plays))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {case: (tmp_path / f"{case}.result").read_text() for case in cases}
    assert results["pinned"] == "ok" and results["pinned-lowercase"] == "ok", results
    for case in ("other-key", "default-pin", "two-keys", "not-a-key", "malformed-pin"):
        message = results[case]
        assert message != "ok", case
        assert "not exactly the pinned nvidia_repo_key_fingerprint" in message, (case, message)
        assert f"https://example.invalid/{case}.pub" in message and "is not added" in message, message
    assert other in results["other-key"] and pinned not in results["other-key"].split("pinned")[0]
    assert NVIDIA_KEY_FINGERPRINT in results["default-pin"] and pinned in results["default-pin"]
    assert pinned in results["two-keys"] and other in results["two-keys"]
    assert "no OpenPGP key" in results["not-a-key"] and "gpg:" in results["not-a-key"]


def test_model_revision_is_resolved_to_a_commit_and_recorded() -> None:
    role = ANSIBLE / "roles" / "model"
    tasks = _tasks(role / "tasks" / "download.yml")
    names = [t["name"] for t in tasks]
    commands = {
        t["name"]: t["ansible.builtin.command"]["argv"] for t in tasks if "ansible.builtin.command" in t
    }
    (resolve,) = [n for n in commands if n.startswith("Resolve")]
    assert "model_info(" in " ".join(commands[resolve]) and ".sha" in " ".join(commands[resolve])
    assert "{{ model_revision }}" in commands[resolve]
    # The download and the verification use the resolved commit, never the (moving) branch.
    for name in (
        "Download the weights (once, at bake time)",
        "Check every file against the hub's checksums and write the checksum list",
    ):
        assert "{{ model_revision_sha }}" in commands[name] and "{{ model_revision }}" not in commands[name]
        assert names.index(resolve) < names.index(name)
    (record,) = [t["ansible.builtin.copy"] for t in tasks if "ansible.builtin.copy" in t]
    assert record["dest"] == "{{ model_path }}/{{ model_revision_file }}"
    assert record["content"].startswith("{{ model_revision_sha }}")
    (read_only,) = [n for n in names if n.startswith("Make the weights read-only")]
    assert names.index(next(n for n in names if n.startswith("Record"))) < names.index(read_only)
    checks = " ".join(json.dumps(t.get("ansible.builtin.assert", {})) for t in tasks)
    assert "model_revision_sha is match('^[0-9a-f]{40}$')" in checks
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert defaults["model_revision_file"] == "{{ synapscribe_platform.host.model_revision_file }}"


def _render_cloudwatch_agent_files(tmp_path: Path) -> None:
    """The role's templates rendered by ansible-playbook into tmp_path (named as their sources),
    with site.yml's own platform lookup."""
    (play,) = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    assert {"role": "cloudwatch_agent"} in play["roles"]
    role = ANSIBLE / "roles" / "cloudwatch_agent"
    render = {
        "name": "Render the CloudWatch agent's files",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**play["vars"], "synapscribe_repo_dir": str(ROOT)},
        "pre_tasks": play["pre_tasks"],
        "tasks": [
            {
                "name": f"Read {r} defaults",
                "ansible.builtin.include_vars": {"file": str(ANSIBLE / f"roles/{r}/defaults/main.yml")},
            }
            for r in ("vllm", "tts", "agentcore", "cloudwatch_agent")
        ]
        + [
            {
                "name": f"Render {src}",
                "ansible.builtin.template": {
                    "src": str(role / "templates" / src),
                    "dest": str(tmp_path / src),
                    "mode": "0644",
                },
            }
            for src in (
                "amazon-cloudwatch-agent.json.j2",
                "agentcore-emf.conf.j2",
                "synapscribe-journal-copy@.service.j2",
            )
        ],
    }
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([render]))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_cloudwatch_agent_ships_each_units_journal_and_the_emf_to_platform_log_groups(tmp_path: Path) -> None:
    """The agent's rendered configuration: a file per unit into platform.yaml's log groups, the EMF
    listener on loopback at fleet.emf_port, and AgentCore's drop-in pointing its metrics there."""
    _render_cloudwatch_agent_files(tmp_path)
    fleet = load_platform().fleet
    config = json.loads((tmp_path / "amazon-cloudwatch-agent.json.j2").read_text())
    files = config["logs"]["logs_collected"]["files"]["collect_list"]
    shipped = {Path(f["file_path"]).name: f["log_group_name"] for f in files}
    # The baked template keeps the environment's placeholder (one AMI for every environment).
    assert shipped == {
        "synapscribe-vllm.log": fleet.log_groups.vllm,
        "synapscribe-tts.log": fleet.log_groups.tts,
        "synapscribe-agentcore.log": fleet.log_groups.agentcore,
    }
    assert all(ENV_PLACEHOLDER in group for group in shipped.values())
    assert all(f["log_stream_name"] == "{instance_id}" and "retention_in_days" not in f for f in files)
    assert config["logs"]["metrics_collected"]["emf"] == {
        "service_address": f"udp://127.0.0.1:{fleet.emf_port}"
    }
    dropin = (tmp_path / "agentcore-emf.conf.j2").read_text()
    assert f"SYNAPSCRIBE_EMF_ENDPOINT=udp://127.0.0.1:{fleet.emf_port}" in dropin
    # The metrics' group is the environment's: the deploy environment file carries it, not the AMI.
    assert "Environment=SYNAPSCRIBE_EMF_LOG_GROUP" not in dropin
    copy = (tmp_path / "synapscribe-journal-copy@.service.j2").read_text()
    assert "StandardOutput=append:/var/log/synapscribe/%i.log" in copy and "--unit=%i.service" in copy


def test_the_user_data_renders_the_baked_agent_configuration_per_environment(tmp_path: Path) -> None:
    """The launch template's agent lines (gpu_fleet.cloudwatch_agent_script) run by bash over the
    role's rendered template: the environment's names in, the placeholder out, everything else as
    baked, and the agent's control script called to load the rendered file and start."""
    from synapscribe.platform import parse_platform
    from synapscribe_cdk.constructs.gpu_fleet import cloudwatch_agent_script

    _render_cloudwatch_agent_files(tmp_path)
    baked = tmp_path / "amazon-cloudwatch-agent.json.j2"
    ctl = tmp_path / "agent-ctl"
    ctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/ctl-args\n')
    ctl.chmod(0o755)
    data = load_platform().model_dump()
    data["host"]["config_dir"] = str(tmp_path)
    data["host"]["deploy_env_file"] = str(tmp_path / "deploy.env")
    data["host"]["cloudwatch_agent"] = {
        "ctl": str(ctl),
        "config_template": str(baked),
        "config": str(tmp_path / "agent.json"),
    }
    platform = parse_platform(data)
    configs = {}
    for env in ("dev", "prod"):
        lines = cloudwatch_agent_script(platform.host, platform.fleet.log_groups, env)
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "ctl-args").read_text().split() == [
            "-a", "fetch-config", "-m", "ec2", "-c", f"file:{tmp_path / 'agent.json'}", "-s",
        ]  # fmt: skip
        configs[env] = json.loads((tmp_path / "agent.json").read_text())
        names = platform.fleet.log_groups.names(env)
        files = configs[env]["logs"]["logs_collected"]["files"]["collect_list"]
        assert {Path(f["file_path"]).name: f["log_group_name"] for f in files} == {
            "synapscribe-vllm.log": names["vllm"],
            "synapscribe-tts.log": names["tts"],
            "synapscribe-agentcore.log": names["agentcore"],
        }
        assert ENV_PLACEHOLDER not in (tmp_path / "agent.json").read_text()
        assert not (tmp_path / "agent.json.tmp").exists()
    # Only the names differ between environments.
    baked_config = json.loads(baked.read_text())
    for config in configs.values():
        for f in config["logs"]["logs_collected"]["files"]["collect_list"]:
            f.pop("log_group_name")
    for f in baked_config["logs"]["logs_collected"]["files"]["collect_list"]:
        f.pop("log_group_name")
    assert configs["dev"] == configs["prod"] == baked_config


def test_cloudwatch_agent_download_is_guarded() -> None:
    tasks = _tasks(ANSIBLE / "roles" / "cloudwatch_agent" / "tasks" / "main.yml")
    for task in tasks:
        if "ansible.builtin.get_url" in task or "deb" in task.get("ansible.builtin.apt", {}):
            assert task["when"] == "cloudwatch_agent_install_enabled", task["name"]
    url = yaml.safe_load((ANSIBLE / "roles" / "cloudwatch_agent" / "defaults" / "main.yml").read_text())[
        "cloudwatch_agent_package_url"
    ]
    assert "{{ cloudwatch_agent_version }}" in url and "latest" not in url  # pinned
