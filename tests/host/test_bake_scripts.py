"""The bake's last two steps on the nspawn host: ami/scripts/validate.sh refuses the provisioned host
(it still holds per-instance state), ami/scripts/cleanup.sh removes that state, and validate.sh then
passes. cleanup.sh takes the host's SSH keys away, so conftest.py runs this module last of all; the
three scripts run in one SSH session, as Packer runs its steps over one connection."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from nspawn import NspawnHost
from synapscribe.platform import load_platform

BAKE_SCRIPTS = Path(__file__).resolve().parents[2] / "ami" / "scripts"

pytestmark = [pytest.mark.host, pytest.mark.timeout(300)]

REMOTE_DIR = "/var/tmp/synapscribe-bake"


def _env() -> dict[str, str]:
    platform = load_platform()
    host = platform.host
    return {
        "SYNAPSCRIBE_UNITS": " ".join((host.units.vllm, host.units.tts, host.units.agentcore)),
        "SYNAPSCRIBE_VLLM_UNIT": host.units.vllm,
        "SYNAPSCRIBE_DEPLOY_ENV_FILE": host.deploy_env_file,
        # The host tests connect (and Ansible runs) as root.
        "BUILD_USER": "root",
        "SYNAPSCRIBE_MAX_MODEL_LEN": str(platform.vllm.max_model_len),
        "SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE": host.cloudwatch_agent.config_template,
        "SYNAPSCRIBE_AGENT_CONFIG": host.cloudwatch_agent.config,
        # No GPU, no vLLM and no weights here: the switches the site.yml run used, the other way round.
        "VALIDATE_GPU": "false",
        "VALIDATE_VLLM": "false",
        "VALIDATE_MODEL": "false",
    }


def test_cleanup_removes_what_validation_refuses(request: pytest.FixtureRequest) -> None:
    if request.config.option.hosts:
        pytest.skip("cleanup.sh changes the host: it runs on the nspawn host only")
    booted: NspawnHost = request.getfixturevalue("nspawn_host")
    target = booted.root / REMOTE_DIR.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for script in ("cleanup.sh", "validate.sh"):
        shutil.copy2(BAKE_SCRIPTS / script, target / script)
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in _env().items())
    run = {s: f"env {env} bash {REMOTE_DIR}/{s}.sh" for s in ("cleanup", "validate")}
    proc = booted.ssh(
        f"{run['validate']}; echo before=$?; {run['cleanup']} && {run['validate']}; echo after=$?",
        timeout=240,
    )
    out, err = proc.stdout, proc.stderr
    assert "before=1\n" in out, out + err
    deploy_env = load_platform().host.deploy_env_file
    for refused in (
        f"FAILED: no {deploy_env}",
        "FAILED: no SSH host keys",
        "FAILED: no authorized_keys of root",
    ):
        assert f"validate: {refused}" in err, err
    assert "validate: /root/.ssh/authorized_keys is still there" in err
    assert "after=0\n" in out and out.rstrip().endswith("after=0"), out + err
    assert "validate: image complete" in out
    # What the image would hold, read from the host's root filesystem (SSH is gone now).
    root = booted.root
    assert not (root / "root" / ".ssh" / "authorized_keys").exists()
    assert not list((root / "etc" / "ssh").glob("ssh_host_*"))
    assert (root / "etc" / "machine-id").read_text() == ""
    assert not (root / deploy_env.lstrip("/")).exists()
