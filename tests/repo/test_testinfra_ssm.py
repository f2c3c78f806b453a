"""The testinfra backend for deployed instances (`--hosts ssm://INSTANCE_ID`, tests/host/ssm_backend.py).

SSM Run Command cannot run here; botocore's Stubber answers SendCommand and GetCommandInvocation
with the response shapes of the AWS Systems Manager API reference (a fresh command is first
unknown to GetCommandInvocation, InvocationDoesNotExist, then Pending/InProgress, then Success
or Failed with the script's exit status in ResponseCode).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import testinfra
import testinfra.backend
from botocore.stub import Stubber

# Loaded from its file, as `pytest --hosts ssm://…` loads it through tests/host/conftest.py.
_SPEC = importlib.util.spec_from_file_location(
    "ssm_backend", Path(__file__).resolve().parents[1] / "host" / "ssm_backend.py"
)
assert _SPEC is not None and _SPEC.loader is not None
ssm_backend = importlib.util.module_from_spec(_SPEC)
sys.modules["ssm_backend"] = ssm_backend
_SPEC.loader.exec_module(ssm_backend)

INSTANCE = "i-0123456789abcdef0"
COMMAND_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def ssm(aws_env: None) -> Any:
    return boto3.client("ssm", region_name="eu-west-1")


def sent(stub: Stubber, command: str) -> None:
    stub.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID, "DocumentName": ssm_backend.DOCUMENT, "Status": "Pending"}},
        {
            "InstanceIds": [INSTANCE],
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {"commands": [command], "executionTimeout": ["600"]},
            "Comment": "testinfra (tests/host)",
        },
    )


def invocation(stub: Stubber, status: str, code: int = -1, out: str = "", err: str = "") -> None:
    stub.add_response(
        "get_command_invocation",
        {
            "CommandId": COMMAND_ID,
            "InstanceId": INSTANCE,
            "DocumentName": "AWS-RunShellScript",
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": code,
            "StandardOutputContent": out,
            "StandardErrorContent": err,
        },
        {"CommandId": COMMAND_ID, "InstanceId": INSTANCE},
    )


def backend(client: Any, **kwargs: Any) -> ssm_backend.SsmBackend:
    return ssm_backend.SsmBackend(INSTANCE, client=client, poll_seconds=0, **kwargs)


def test_command_runs_through_run_command_and_waits_for_its_end(ssm: Any) -> None:
    with Stubber(ssm) as stub:
        sent(stub, "systemctl is-active synapscribe-vllm")
        stub.add_client_error("get_command_invocation", "InvocationDoesNotExist")
        invocation(stub, "Pending")
        invocation(stub, "InProgress")
        invocation(stub, "Success", 0, out="active\n")
        result = backend(ssm).run("systemctl is-active %s", "synapscribe-vllm")
        stub.assert_no_pending_responses()
    assert result.rc == 0 and result.stdout == "active\n"


def test_exit_status_and_stderr_come_back(ssm: Any) -> None:
    with Stubber(ssm) as stub:
        sent(stub, "test -f /nonexistent")
        invocation(stub, "Failed", 1, err="")
        assert backend(ssm).run("test -f /nonexistent").rc == 1
    with Stubber(ssm) as stub:
        sent(stub, "ls /x")
        invocation(stub, "Failed", 2, err="ls: cannot access '/x'\n")
        result = backend(ssm).run("ls /x")
    assert result.rc == 2 and "cannot access" in result.stderr


def test_sudo_wraps_the_command_as_testinfra_does(ssm: Any) -> None:
    with Stubber(ssm) as stub:
        sent(stub, "sudo /bin/sh -c 'cat /etc/synapscribe/deploy.env'")
        invocation(stub, "Success", 0, out="AWS_REGION=eu-west-1\n")
        b = backend(ssm)
        b.sudo = True
        assert b.run("cat /etc/synapscribe/deploy.env").stdout == "AWS_REGION=eu-west-1\n"


@pytest.mark.parametrize("status", ["TimedOut", "Cancelled"])
def test_a_command_that_never_ended_raises(ssm: Any, status: str) -> None:
    with Stubber(ssm) as stub:
        sent(stub, "sleep 1")
        invocation(stub, status)
        with pytest.raises(ssm_backend.SsmCommandError, match=status):
            backend(ssm).run("sleep 1")


def test_output_at_the_apis_limit_is_refused(ssm: Any) -> None:
    with Stubber(ssm) as stub:
        sent(stub, "journalctl")
        invocation(stub, "Success", 0, out="x" * ssm_backend.STDOUT_LIMIT)
        with pytest.raises(ssm_backend.SsmCommandError, match="limit"):
            backend(ssm).run("journalctl")


def test_hosts_ssm_url_selects_the_backend(monkeypatch: pytest.MonkeyPatch, ssm: Any) -> None:
    # What tests/host/conftest.py registers, and what `--hosts ssm://ID` resolves to.
    monkeypatch.setitem(testinfra.backend.BACKENDS, "ssm", "ssm_backend.SsmBackend")
    host = testinfra.get_host(f"ssm://{INSTANCE}")
    assert isinstance(host.backend, ssm_backend.SsmBackend)
    assert host.backend.instance_id == INSTANCE
    host.backend._client = ssm
    host.backend.poll_seconds = 0
    with Stubber(ssm) as stub:
        sent(stub, "uname -s")
        invocation(stub, "Success", 0, out="Linux\n")
        assert host.check_output("uname -s") == "Linux"
