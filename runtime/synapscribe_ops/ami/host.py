"""Commands on an EC2 instance through SSM Run Command (AWS-RunShellScript, as root): the verify
step's view of its host. No SSH: the verify instance has no key pair and no inbound rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DOCUMENT = "AWS-RunShellScript"
#: GetCommandInvocation's Status values while the command has not finished.
RUNNING = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


class NotReachable(Exception):
    """The instance is not (yet) registered with Systems Manager, or the command never ended."""


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


class HostCommands:
    def __init__(
        self,
        ssm: Any,
        instance_id: str,
        *,
        poll_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ssm = ssm
        self.instance_id = instance_id
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock

    def run(self, script: str, timeout: float = 600.0) -> Result:
        try:
            sent = self.ssm.send_command(
                InstanceIds=[self.instance_id],
                DocumentName=DOCUMENT,
                Parameters={"commands": [script], "executionTimeout": [str(int(timeout))]},
                Comment="synapscribe ami verify",
            )
        except self.ssm.exceptions.InvalidInstanceId as exc:
            raise NotReachable(f"{self.instance_id} is not registered with Systems Manager yet") from exc
        command_id = sent["Command"]["CommandId"]
        deadline = self.clock() + timeout + 60
        while True:
            try:
                invocation = self.ssm.get_command_invocation(
                    CommandId=command_id, InstanceId=self.instance_id
                )
            except self.ssm.exceptions.InvocationDoesNotExist:
                invocation = {"Status": "Pending"}  # just sent: not registered yet
            status = invocation["Status"]
            if status in ("Success", "Failed"):
                return Result(
                    int(invocation["ResponseCode"]),
                    invocation.get("StandardOutputContent", ""),
                    invocation.get("StandardErrorContent", ""),
                )
            if status not in RUNNING or self.clock() > deadline:
                raise NotReachable(
                    f"command on {self.instance_id}: {invocation.get('StatusDetails', status)}"
                )
            self.sleep(self.poll_seconds)
