"""Host verification: boot a Debian 12 host under systemd-nspawn, apply ansible/site.yml to it over
SSH twice (the second run must change nothing), then check it with testinfra.

With `--hosts ssh://ubuntu@IP` (testinfra's option) the same tests run against that host instead
(a freshly baked instance); nothing is booted or provisioned then. A deployed instance, which has
no SSH, is reached with `--hosts ssm://INSTANCE_ID` (SSM Run Command, see ssm_backend.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
import testinfra.backend
from cached_build import BackgroundPrefetch
from hostrun import RUN, timed
from nspawn import CACHE_DIR, NspawnHost, can_boot, free_subnet, rootfs_tarball
from required_tools import skip_unless_possible_or_fail_in_ci
from synapscribe.platform import load_platform
from worker_summary import hand_to_controller

# `--hosts ssm://INSTANCE_ID`: a deployed instance through SSM Run Command (ssm_backend.py).
testinfra.backend.BACKENDS.setdefault("ssm", "ssm_backend.SsmBackend")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSIBLE_DIR = ROOT / "ansible"
UNITS = ("synapscribe-vllm", "synapscribe-tts", "synapscribe-agentcore", "synapscribe-standin")

# Values for /etc/synapscribe/deploy.env, which user data writes on a real instance. AgentCore
# validates them at start; nothing here is ever contacted by the health and readiness checks.
TEST_DEPLOY_ENV = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "SYNAPSCRIBE_BUCKET": "synapscribe-hosttest",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-hosttest-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-hosttest-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-hosttest-sessions",
    "SYNAPSCRIBE_LIMITS_TABLE": "synapscribe-hosttest-limits",
    "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/connections",
}


def _check(cmd: list[str], timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def _pip(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", *args]


def wheelhouse() -> Path:
    """The runtime's dependencies as wheels, cached per pyproject.toml (the offline bake's input)."""
    import hashlib

    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    target = CACHE_DIR / f"wheelhouse-{key}"
    if target.is_dir():
        return target
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _check(_pip("wheel", "--quiet", "--wheel-dir", str(partial), str(ROOT)))
    for wheel in partial.glob("synapscribe-*.whl"):
        wheel.unlink()
    partial.rename(target)
    for stale in CACHE_DIR.glob("wheelhouse-*"):
        if stale != target and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return target


def build_runtime_wheel(directory: Path, project: Path = ROOT, pattern: str = "synapscribe-*.whl") -> Path:
    """The wheel of `project`: the product's (the root) by default, as the runtime role builds it."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    shutil.rmtree(project / "build" / "lib", ignore_errors=True)
    _check(_pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(directory), str(project)), env=env)
    (wheel,) = directory.glob(pattern)
    return wheel


def run_playbook(inventory: Path, extra_vars: Path) -> tuple[int, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra_vars}", "site.yml"],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def nspawn_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NspawnHost]:
    """A booted, provisioned (site.yml twice) Debian 12 host with the model stand-in running."""
    reason = can_boot()
    if reason and os.geteuid() == 0:
        pytest.fail(f"host verification: {reason}", pytrace=False)
    skip_unless_possible_or_fail_in_ci(f"host verification {reason}" if reason else None)
    platform = load_platform()
    work = tmp_path_factory.mktemp("nspawn")
    RUN.started = t = time.monotonic()
    tarball = rootfs_tarball()
    timed("rootfs", t)

    key = work / "id_ed25519"
    _check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "synapscribe-hosttest", "-f", str(key)])
    name = f"syn{os.getpid() % 100000}"
    host = NspawnHost(name=name, root=work / "root", key=key, subnet=free_subnet())
    t = time.monotonic()
    host.prepare(tarball)
    host.boot()
    timed("boot", t)
    RUN.address = host.address
    try:
        t = time.monotonic()
        wheels = wheelhouse()
        runtime_wheel = build_runtime_wheel(work / "dist")
        timed("wheels", t)

        deploy_env = "".join(f"{k}={v}\n" for k, v in TEST_DEPLOY_ENV.items())
        proc = host.ssh(
            f"install -d -m 0750 /etc/synapscribe && printf %s '{deploy_env}' > /etc/synapscribe/deploy.env"
        )
        assert proc.returncode == 0, proc.stderr

        inventory = work / "inventory.yml"
        inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            name: {
                                "ansible_host": host.address,
                                "ansible_user": "root",
                                "ansible_ssh_private_key_file": str(key),
                                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                "-o UserKnownHostsFile=/dev/null",
                            }
                        }
                    }
                }
            )
        )
        # GPU-only steps are switched off by variables, exactly as a Packer run would switch them on.
        extra_vars = work / "extra-vars.json"
        extra_vars.write_text(
            json.dumps(
                {
                    "nvidia_enabled": False,
                    "model_download_enabled": False,
                    "vllm_install_enabled": False,
                    "cloudwatch_agent_install_enabled": False,
                    "base_apt_update_cache": False,
                    "runtime_wheelhouse": str(wheels),
                    "runtime_wheel": str(runtime_wheel),
                    "tts_engines": "espeak-ng",
                    "base_journald_restart": False,
                }
            )
        )
        for run in ("site.yml first run", "site.yml second run"):
            t = time.monotonic()
            rc, output = run_playbook(inventory, extra_vars)
            timed(run, t)
            RUN.playbook_runs.append((rc, output))
            if rc != 0:
                pytest.fail(f"{run} failed (exit {rc}):\n{output[-6000:]}")

        # The model stand-in takes vLLM's place on its port (test only: not part of the roles, nor
        # of the product's wheel; it comes from the tools' project, installed beside the product).
        tools_wheel = build_runtime_wheel(work / "tools", ROOT / "runtime", "synapscribe_tools-*.whl")
        shutil.copy(tools_wheel, host.root / "root" / tools_wheel.name)
        proc = host.ssh(
            "/opt/synapscribe/runtime/bin/python", "-m", "pip", "install", "--quiet", "--no-index",
            "--no-deps", f"/root/{tools_wheel.name}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        proc = host.ssh(
            "systemd-run", "--unit=synapscribe-standin", "--uid=synapscribe", "--gid=synapscribe",
            "/opt/synapscribe/runtime/bin/synapscribe", "standin", "--host", "127.0.0.1",
            "--port", str(platform.ports.vllm),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        yield host
    finally:
        host.stop()
        RUN.timings["total"] = round(time.monotonic() - RUN.started, 1)


@pytest.fixture(scope="module")
def host(_testinfra_host: testinfra.host.Host, request: pytest.FixtureRequest) -> testinfra.host.Host:
    """The host under test: `--hosts` if given (a baked instance), else the nspawn host."""
    if request.config.option.hosts:
        return _testinfra_host
    booted: NspawnHost = request.getfixturevalue("nspawn_host")
    return testinfra.get_host(
        f"ssh://root@{booted.address}",
        ssh_identity_file=str(booted.key),
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
        "-o ConnectTimeout=10 -o ServerAliveInterval=10",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "host" in getattr(item, "funcargs", {}):
        target = item.funcargs["host"]
        try:
            with target.sudo():
                journal = target.run(
                    "journalctl --no-pager -n 200 " + " ".join(f"-u {u}" for u in UNITS)
                ).stdout
        except Exception as exc:  # the journal is a diagnostic; its absence must not hide the failure
            journal = f"(journal not available: {exc})"
        report.sections.append(("journalctl synapscribe-*", journal))


def summary_lines() -> list[str]:
    if not RUN.timings:
        return []
    parts = ", ".join(f"{k} {v} s" for k, v in RUN.timings.items())
    lines = [f"host verification time: {parts}"]
    built = PREFETCH.built()
    if built is not None:
        lines.append(f"built in the background while the other tests ran: {built}")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    hand_to_controller(session.config, summary_lines())


PREFETCH = BackgroundPrefetch(Path(__file__).with_name("prefetch.py"), CACHE_DIR / "prefetch.log")


#: Runs after every other test: ami/scripts/cleanup.sh removes the nspawn host's SSH host keys and
#: root's authorized_keys, so nothing can reach the host over SSH afterwards.
LAST_MODULE = "test_bake_scripts.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == LAST_MODULE)  # stable: the others keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any(item.get_closest_marker("host") for item in session.items)
    if wanted and not session.config.option.hosts and PREFETCH.enabled() and not can_boot():
        PREFETCH.start()


def pytest_unconfigure() -> None:
    PREFETCH.stop()
