"""testinfra over SSM Run Command: `pytest tests/host --hosts ssm://INSTANCE_ID`.

The GPU hosts have no SSH (no key pair, no port 22), and pytest-testinfra 10.2.2 has no SSM
backend of its own (its backends: local, ssh, safe-ssh, paramiko, salt, docker, podman, ansible,
kubectl, winrm, lxc, openshift, chroot). This one runs each command through the
`AWS-RunShellScript` document (as root, by the SSM agent the instance role's Session Manager
statements already serve: ec2messages for Run Command, see stacks/compute.py) and reads the exit status and output back with
GetCommandInvocation. The caller needs `ssm:SendCommand` (on the instance and the document) and
`ssm:GetCommandInvocation`; the region comes from the usual AWS settings (AWS_REGION, profile).

GetCommandInvocation returns at most the first 24,000 characters of standard output and 8,000 of
standard error (AWS Systems Manager API reference, GetCommandInvocation): a command whose output
reaches a limit raises instead of handing a truncated text to a check.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from testinfra.backend import base

DOCUMENT = "AWS-RunShellScript"
STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
#: GetCommandInvocation's Status values while the command has not finished.
RUNNING = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


class SsmCommandError(RuntimeError):
    """The command did not run to an exit status, or its output was cut."""


class SsmBackend(base.BaseBackend):
    NAME = "ssm"

    def __init__(
        self,
        hostname: str,
        *args: Any,
        client: Any | None = None,
        command_timeout: float = 600.0,
        poll_seconds: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(hostname, *args, **kwargs)
        self.instance_id = hostname
        self._client = client
        self.command_timeout = command_timeout
        self.poll_seconds = poll_seconds

    @property
    def client(self) -> Any:
        # Made on first use: collecting tests with --hosts must not need AWS.
        if self._client is None:
            self._client = boto3.client("ssm")
        return self._client

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        sent = self.client.send_command(
            InstanceIds=[self.instance_id],
            DocumentName=DOCUMENT,
            Parameters={"commands": [cmd], "executionTimeout": [str(int(self.command_timeout))]},
            Comment="testinfra (tests/host)",
        )
        invocation = self._wait(sent["Command"]["CommandId"], cmd)
        out = invocation.get("StandardOutputContent", "")
        err = invocation.get("StandardErrorContent", "")
        if len(out) >= STDOUT_LIMIT or len(err) >= STDERR_LIMIT:
            raise SsmCommandError(f"{cmd!r}: output reached SSM's limit and may be cut")
        return self.result(int(invocation["ResponseCode"]), self.encode(cmd), out.encode(), err.encode())

    def _wait(self, command_id: str, cmd: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.command_timeout + 60
        while True:
            try:
                invocation: dict[str, Any] = self.client.get_command_invocation(
                    CommandId=command_id, InstanceId=self.instance_id
                )
            except self.client.exceptions.InvocationDoesNotExist:
                invocation = {"Status": "Pending"}  # just sent: not registered yet
            status = invocation["Status"]
            if status in ("Success", "Failed"):
                return invocation
            if status not in RUNNING:
                detail = invocation.get("StatusDetails", status)
                raise SsmCommandError(f"{cmd!r} on {self.instance_id}: {status} ({detail})")
            if time.monotonic() > deadline:
                raise SsmCommandError(f"{cmd!r} on {self.instance_id}: still {status} at the deadline")
            time.sleep(self.poll_seconds)
