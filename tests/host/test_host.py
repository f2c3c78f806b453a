"""What a SynapScribe GPU host must look like after site.yml: the nspawn host here, or a baked
instance with `pytest tests/host --hosts ssh://ubuntu@IP --sudo`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time

import pytest
from hostrun import RUN, changed_tasks, recap
from synapscribe.platform import PlatformConfig, load_platform
from testinfra.host import Host
from vllm_venv import parse, parsed_values, vllm_venv

pytestmark = [pytest.mark.host, pytest.mark.timeout(900)]

SERVICES = ("synapscribe-vllm", "synapscribe-tts", "synapscribe-agentcore")
HARDENING = (
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "ProtectKernelModules=true",
    "ProtectControlGroups=true",
    "RestrictSUIDSGID=true",
    "CapabilityBoundingSet=",
)
READY_TIMEOUT = float(os.environ.get("SYNAPSCRIBE_HOSTTEST_READY_TIMEOUT", "60"))


def unit_text(host: Host, name: str) -> str:
    with host.sudo():
        return str(host.file(f"/etc/systemd/system/{name}.service").content_string)


def env_file(host: Host, path: str) -> dict[str, str]:
    with host.sudo():
        text = str(host.file(path).content_string)
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


def vllm_exec_start(host: Host) -> list[str]:
    """The vLLM unit's ExecStart, split the way systemd does (continuations joined)."""
    text = unit_text(host, "synapscribe-vllm").replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def serve_args(host: Host) -> list[str]:
    argv = vllm_exec_start(host)
    assert "serve" in argv, argv
    assert argv[argv.index("serve") - 1].endswith("/bin/vllm"), argv
    return argv[argv.index("serve") + 1 :]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def host_platform(host: Host) -> PlatformConfig:
    """platform.yaml at the context length this host was baked with (16K unless switched)."""
    return load_platform().with_max_model_len(int(flag(serve_args(host), "--max-model-len")))


def instance_address(host: Host) -> str:
    out = host.check_output("ip -4 -o route get 192.0.2.1")
    match = re.search(r" src (\d+\.\d+\.\d+\.\d+)", out)
    assert match, out
    return match.group(1)


def test_second_site_run_changed_nothing(request: pytest.FixtureRequest) -> None:
    if request.config.option.hosts:
        pytest.skip("idempotence is proven on the nspawn host; --hosts only inspects")
    request.getfixturevalue("nspawn_host")
    (first_rc, first), (second_rc, second) = RUN.playbook_runs
    assert first_rc == 0 and recap(first)["changed"] > 0
    assert second_rc == 0
    assert recap(second)["changed"] == 0, f"changed on the second run: {changed_tasks(second)}"
    assert recap(second)["failed"] == 0


def test_service_users(host: Host) -> None:
    for name in ("synapscribe", "vllm"):
        user = host.user(name)
        assert user.exists, name
        assert user.uid < 1000, f"{name} is not a system user"
        assert user.shell == "/usr/sbin/nologin"
    assert "synapscribe" not in host.user("vllm").groups


def test_directories_and_permissions(host: Host) -> None:
    with host.sudo():
        config = host.file("/etc/synapscribe")
        assert config.is_directory and config.user == "root" and config.group == "synapscribe"
        assert config.mode == 0o750
        for name in ("agentcore.env", "tts.env"):
            env = host.file(f"/etc/synapscribe/{name}")
            assert env.is_file and env.user == "root" and env.group == "synapscribe", name
            assert env.mode == 0o640, name
    assert host.file("/opt/synapscribe/runtime/bin/synapscribe").is_file
    assert host.file("/opt/synapscribe/runtime").user == "root"
    for script in ("require-gpu", "vllm-ready", "agentcore-start"):
        f = host.file(f"/usr/local/libexec/synapscribe/{script}")
        assert f.is_file and f.user == "root" and f.mode == 0o755, script


def test_runtime_package_is_this_repository(host: Host) -> None:
    out = host.check_output(
        "/opt/synapscribe/runtime/bin/python -c "
        "'import json, synapscribe.platform as p; print(json.dumps(p.load_platform().ports.model_dump()))'"
    )
    assert json.loads(out) == load_platform().ports.model_dump()


def test_base_policy(host: Host) -> None:
    with host.sudo():
        journald = host.file("/etc/systemd/journald.conf.d/synapscribe.conf").content_string
        window = host.file("/etc/systemd/system/apt-daily-upgrade.timer.d/synapscribe.conf").content_string
        unattended = host.file("/etc/apt/apt.conf.d/52synapscribe-unattended-upgrades").content_string
    assert re.search(r"^SystemMaxUse=\S+", journald, re.M)
    assert re.search(r"^OnCalendar=\S", window, re.M)
    assert 'Automatic-Reboot "false"' in unattended and '"nvidia-";' in unattended
    assert host.service("systemd-timesyncd").is_enabled


def test_env_files_follow_the_platform(host: Host) -> None:
    platform = host_platform(host)
    agentcore = env_file(host, "/etc/synapscribe/agentcore.env")
    assert agentcore["VLLM_BASE_URL"] == f"http://127.0.0.1:{platform.ports.vllm}/v1"
    assert agentcore["VLLM_MODEL"] == platform.model.served_name
    assert agentcore["SYNAPSCRIBE_TTS_URL"] == f"http://127.0.0.1:{platform.ports.tts}"
    assert int(agentcore["SYNAPSCRIBE_MAX_MODEL_LEN"]) == platform.vllm.max_model_len
    tts = env_file(host, "/etc/synapscribe/tts.env")
    assert tts["SYNAPSCRIBE_TTS_ENGINES"]


def test_unit_files(host: Host) -> None:
    for name in SERVICES:
        text = unit_text(host, name)
        for option in HARDENING:
            assert re.search(rf"^{re.escape(option)}$", text, re.M), f"{name}: {option} missing"
        assert re.search(r"^Restart=on-failure$", text, re.M), name
        assert re.search(r"^StartLimitBurst=\d+$", text, re.M), name
    vllm = unit_text(host, "synapscribe-vllm")
    assert re.search(r"^Type=simple$", vllm, re.M)
    assert re.search(r"^User=vllm$", vllm, re.M)
    assert re.search(r"^Environment=HF_HUB_OFFLINE=1$", vllm, re.M)
    assert re.search(r"^ExecStartPost=/usr/local/libexec/synapscribe/vllm-ready$", vllm, re.M)
    timeout = re.search(r"^TimeoutStartSec=(\d+)$", vllm, re.M)
    assert timeout and int(timeout.group(1)) >= 600, "the model load needs minutes"
    agentcore = unit_text(host, "synapscribe-agentcore")
    assert "EnvironmentFile=/etc/synapscribe/agentcore.env" in agentcore
    assert "EnvironmentFile=-/etc/synapscribe/deploy.env" in agentcore
    stop = re.search(r"^TimeoutStopSec=(\d+)$", agentcore, re.M)
    drain = host_platform(host).agentcore_stop_timeout_seconds
    assert stop and int(stop.group(1)) == drain, "systemd must wait out AgentCore's drain"


def test_vllm_flags_follow_the_platform(host: Host) -> None:
    platform = host_platform(host)
    args = serve_args(host)
    assert args[0] == platform.model.path
    expected = {
        "--host": "127.0.0.1",
        "--port": str(platform.ports.vllm),
        "--served-model-name": platform.model.served_name,
        "--gpu-memory-utilization": str(platform.vllm.gpu_memory_utilization),
        "--max-num-seqs": str(platform.vllm.max_num_seqs),
        "--max-num-batched-tokens": str(platform.vllm.max_num_batched_tokens),
        "--dtype": platform.model.dtype,
    }
    assert {k: flag(args, k) for k in expected} == expected
    assert "--enable-prefix-caching" in args
    assert float(flag(args, "--mm-processor-cache-gb")) == platform.mm_processor_cache_gb
    assert json.loads(flag(args, "--limit-mm-per-prompt")) == {
        "audio": platform.max_audio_items_per_prompt, "image": 0, "video": 0,
    }  # fmt: skip


def test_units_enabled(host: Host) -> None:
    for name in SERVICES:
        assert host.service(name).is_enabled, name


def test_tts_and_agentcore_running_on_their_addresses(host: Host) -> None:
    platform = load_platform()
    address = instance_address(host)
    for name in ("synapscribe-tts", "synapscribe-agentcore"):
        assert host.service(name).is_running, name
    assert host.socket(f"tcp://127.0.0.1:{platform.ports.tts}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{platform.ports.tts}").is_listening
    assert host.socket(f"tcp://{address}:{platform.ports.agentcore}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{platform.ports.agentcore}").is_listening
    with host.sudo():
        listeners = host.check_output("ss -ltnpH")
    assert f"{address}:{platform.ports.agentcore}" in listeners


def _get(host: Host, url: str) -> tuple[int, str]:
    cmd = host.run(f"curl -sS -m 10 -o /dev/stderr -w '%{{http_code}}' {shlex.quote(url)}")
    return int(cmd.stdout or 0), cmd.stderr


def test_health_and_ready(host: Host) -> None:
    platform = load_platform()
    address = instance_address(host)
    assert _get(host, f"http://127.0.0.1:{platform.ports.tts}/health")[0] == 200
    assert _get(host, f"http://{address}:{platform.ports.agentcore}/health")[0] == 200
    deadline = time.monotonic() + READY_TIMEOUT
    status, body = _get(host, f"http://{address}:{platform.ports.agentcore}/ready")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(2)
        status, body = _get(host, f"http://{address}:{platform.ports.agentcore}/ready")
    assert status == 200, f"/ready answered {status}: {body}"


def test_tts_speaks(host: Host) -> None:
    platform = load_platform()
    body = json.dumps({"input": "Host check.", "voice": platform.tts.default_voice, "response_format": "mp3"})
    out = host.run(
        f"curl -sS -m 30 -o /dev/null -w '%{{http_code}} %{{content_type}} %{{size_download}}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"http://127.0.0.1:{platform.ports.tts}/v1/audio/speech"
    )
    status, content_type, size = out.stdout.split()
    assert status == "200" and content_type.startswith("audio/mpeg") and int(size) > 1000, out.stdout


def _vllm_state(host: Host) -> dict[str, str]:
    out = host.check_output(
        "systemctl show -p ActiveState -p Result -p NRestarts -p ExecMainStatus synapscribe-vllm"
    )
    return dict(line.split("=", 1) for line in out.splitlines())


def test_vllm_without_gpu_fails_cleanly(host: Host) -> None:
    if host.run("nvidia-smi -L").rc == 0:
        pytest.skip("this host has a GPU: vLLM is expected to serve")
    restart_sec = int(re.search(r"^RestartSec=(\d+)$", unit_text(host, "synapscribe-vllm"), re.M).group(1))  # type: ignore[union-attr]
    with host.sudo():
        started = host.run("systemctl start synapscribe-vllm")
        assert started.rc != 0, "vLLM started on a host without a GPU"
        state = _vllm_state(host)
        assert state["ActiveState"] == "failed", state
        assert state["ExecMainStatus"] == "78", state
        time.sleep(restart_sec + 2)  # a restart would have happened by now
        state = _vllm_state(host)
        assert state["ActiveState"] == "failed" and state["NRestarts"] == "0", state
        journal = host.check_output("journalctl --no-pager -u synapscribe-vllm -n 20")
    assert "require-gpu:" in journal


def test_vllm_command_line_accepted_by_pinned_vllm(host: Host) -> None:
    platform = host_platform(host)
    venv, seconds = vllm_venv(platform.vllm.version)
    if seconds:
        RUN.timings["vllm venv install"] = round(seconds, 1)
    args = serve_args(host)
    t = time.monotonic()
    accepted = parse(venv, args)
    RUN.timings["vllm arg parse"] = round(time.monotonic() - t, 1)
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    values = parsed_values(accepted)
    assert values["model_tag"] == platform.model.path
    assert values["max_model_len"] == platform.vllm.max_model_len
    assert values["gpu_memory_utilization"] == platform.vllm.gpu_memory_utilization
    assert values["max_num_seqs"] == platform.vllm.max_num_seqs
    assert values["max_num_batched_tokens"] == platform.vllm.max_num_batched_tokens
    assert values["enable_prefix_caching"] is True
    assert values["limit_mm_per_prompt"] == {
        "audio": platform.max_audio_items_per_prompt,
        "image": 0,
        "video": 0,
    }
    assert values["mm_processor_cache_gb"] == platform.mm_processor_cache_gb
    rejected = parse(venv, [*args, "--no-such-flag", "1"])
    assert rejected.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in rejected.stderr


def test_vllm_readiness_poll_sees_the_served_model(host: Host) -> None:
    """The unit's ExecStartPost against what answers on vLLM's port (the stand-in here, vLLM on a GPU host)."""
    platform = host_platform(host)
    with host.sudo():
        out = host.run("timeout 60 /usr/local/libexec/synapscribe/vllm-ready")
    assert out.rc == 0, out.stderr
    assert f"{platform.model.served_name} is served" in out.stdout


def test_cloudwatch_agent_ships_the_units_journals_and_agentcore_emf(host: Host) -> None:
    """The baked agent configuration template names platform.yaml's log group templates ({env}
    unfilled: one AMI for every environment), the user data's lines render it for an environment
    (its package is the bake's job on AWS: installed there, not here, so the agent's control script
    is not run), and each unit's journal is copied where the agent tails it."""
    platform = host_platform(host)
    fleet, agent = platform.fleet, platform.host.cloudwatch_agent
    with host.sudo():
        template = json.loads(host.file(agent.config_template).content_string)
    files = template["logs"]["logs_collected"]["files"]["collect_list"]
    assert {f["file_path"]: f["log_group_name"] for f in files} == {
        f"/var/log/synapscribe/{name}.log": group
        for name, group in zip(
            SERVICES, (fleet.log_groups.vllm, fleet.log_groups.tts, fleet.log_groups.agentcore), strict=True
        )
    }
    assert (
        template["logs"]["metrics_collected"]["emf"]["service_address"] == f"udp://127.0.0.1:{fleet.emf_port}"
    )
    baked = host.file("/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl").exists
    if not baked:
        from synapscribe_cdk.constructs.gpu_fleet import cloudwatch_agent_script

        render = [
            line
            for line in cloudwatch_agent_script(platform.host, fleet.log_groups, "hosttest")
            if agent.ctl not in line
        ]
        with host.sudo():
            out = host.run("bash -euo pipefail -c " + shlex.quote("\n".join(render)))
            assert out.rc == 0, out.stderr
            config = json.loads(host.file(agent.config).content_string)
            host.run(f"rm -f {agent.config}")
        names = fleet.log_groups.names("hosttest")
        rendered = {
            f["file_path"]: f["log_group_name"]
            for f in config["logs"]["logs_collected"]["files"]["collect_list"]
        }
        assert rendered == {
            f"/var/log/synapscribe/{name}.log": names[key]
            for name, key in zip(SERVICES, ("vllm", "tts", "agentcore"), strict=True)
        }
    for name in SERVICES:
        assert host.service(f"synapscribe-journal-copy@{name}").is_running, name
    deadline = time.monotonic() + 30
    while (
        host.file("/var/log/synapscribe/synapscribe-agentcore.log").size == 0 and time.monotonic() < deadline
    ):
        time.sleep(1)
    assert host.file("/var/log/synapscribe/synapscribe-agentcore.log").size > 0, (
        "AgentCore's journal is copied"
    )
    environment = host.check_output("systemctl show -p Environment synapscribe-agentcore")
    assert f"SYNAPSCRIBE_EMF_ENDPOINT=udp://127.0.0.1:{fleet.emf_port}" in environment
    # The log group is the environment's: the deploy environment file carries it, the AMI does not.
    assert "SYNAPSCRIBE_EMF_LOG_GROUP" not in environment
    if baked:  # a baked instance, started by its user data
        assert host.service("amazon-cloudwatch-agent").is_running


def test_startup_timeline_recorded_in_order(host: Host) -> None:
    """synapscribe-startup-timeline (started by site.yml's handler, at boot on an instance) writes
    each step's time once AgentCore is ready: ordered, and the readiness chain in its order."""
    path = "/run/synapscribe-startup/timeline.json"
    deadline = time.monotonic() + READY_TIMEOUT
    with host.sudo():
        while not host.file(path).exists and time.monotonic() < deadline:
            time.sleep(2)
        assert host.file(path).exists, host.check_output(
            "journalctl --no-pager -u synapscribe-startup-timeline -n 30"
        )
        timeline = json.loads(host.file(path).content_string)
    assert timeline["missing"] == [], timeline
    names = [s["step"] for s in timeline["steps"]]
    seconds = [s["seconds"] for s in timeline["steps"]]
    assert seconds == sorted(seconds), timeline
    chain = ["kernel_done", "vllm:listening", "vllm:model_listed", "agentcore:ready"]
    assert [n for n in names if n in chain] == chain, names
    for unit in ("synapscribe-tts", "synapscribe-agentcore"):
        assert names.index(f"{unit}:started") <= names.index(f"{unit}:active"), names
    # No IMDS in the container: measured from the container's start, and no metric sent.
    assert timeline["origin"] in ("launch", "kernel_done")
