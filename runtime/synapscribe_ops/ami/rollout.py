"""rollout: replace an environment's GPU instances with its channel's image.

An EC2 Auto Scaling instance refresh: rolling, a minimum healthy percentage, checkpoints (the
refresh pauses at each for `checkpoint_delay`), and the fleet's alarms as its
`AlarmSpecification` (an alarm going to ALARM fails the refresh). The smoke test against the
environment is the last checkpoint: it runs once every instance is replaced.

Two settings differ from what a launch template with a fixed AMI id would use, both because the
launch template resolves the channel (`resolve:ssm:`) at each launch:
- `AutoRollback` is off: Auto Scaling cannot roll back when the launch template takes its ImageId
  from an SSM parameter (RollbackInstanceRefresh, Amazon EC2 Auto Scaling API reference: "A
  rollback is not supported [when] the Auto Scaling group has a launch template that uses an AWS
  Systems Manager parameter instead of an AMI ID"). The rollback is this step's: a failed
  refresh or smoke test puts the channel's previous image back and refreshes again.
- `SkipMatching` is off: Auto Scaling matches the launch template's version and the instance
  types, which a new image in the channel does not change, so it would skip every instance. The
  matching is this step's: instances already running the channel's image are not refreshed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synapscribe import image_names as tags
from synapscribe.platform import PlatformConfig

from synapscribe_ops.ami import channels
from synapscribe_ops.ami.errors import Exit, PipelineError
from synapscribe_ops.ami.images import describe

#: DescribeInstanceRefreshes Status values after which nothing more happens.
DONE = frozenset({"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"})


@dataclass
class Refresh:
    """The refresh settings (defaults: half the fleet stays healthy; a pause at half way)."""

    min_healthy_percentage: int = 50
    checkpoints: list[int] = field(default_factory=lambda: [50, 100])
    checkpoint_delay_seconds: int = 600
    timeout_seconds: float = 7200.0
    poll_seconds: float = 30.0


@dataclass
class Rollout:
    autoscaling: Any
    ec2: Any
    ssm: Any
    platform: PlatformConfig
    environment: str
    group_name: str
    alarm_names: list[str]
    smoke: Callable[[], bool]
    refresh: Refresh = field(default_factory=Refresh)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def run(self) -> str:
        """Roll the channel's image out; its id. PipelineError(ROLLOUT_FAILED) after a rollback."""
        channel = self.platform.ami.channel(self.environment)
        image_id = channels.read_parameter(self.ssm, channel.current)
        if image_id is None:
            raise PipelineError(Exit.REFUSED, f"{channel.current} is not set: promote an image first")
        image = describe(self.ec2, image_id)
        if tags.promoted(self.environment) not in image.tags:
            raise PipelineError(Exit.REFUSED, f"{image_id} was not promoted to {self.environment}")
        problem = self.replace(image_id) or self._smoke()
        if problem is None:
            if tags.rolled_out(self.environment) not in image.tags:
                tags.put(self.ec2, image_id, {tags.rolled_out(self.environment): tags.now()})
            return image_id
        tags.put(self.ec2, image_id, {tags.rollout_failed(self.environment): f"{tags.now()} {problem}"})
        self._log(f"{image_id} failed in {self.environment}: {problem}; rolling back")
        before = channels.rollback(self.ssm, channel)
        again = self.replace(str(before.previous))
        if again is not None:
            raise PipelineError(
                Exit.ROLLBACK_FAILED,
                f"{problem}; the channel is back on {before.previous} but its refresh failed too: {again}",
            )
        raise PipelineError(Exit.ROLLOUT_FAILED, f"{problem}; rolled back to {before.previous}")

    def _smoke(self) -> str | None:
        return None if self.smoke() else "the smoke test failed"

    def _log(self, message: str) -> None:
        print(f"rollout {self.environment}: {message}", file=sys.stderr)

    def outdated(self, image_id: str) -> list[str]:
        """The group's instances not running `image_id` (our skip matching)."""
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group_name])
        if not groups["AutoScalingGroups"]:
            raise PipelineError(Exit.AWS, f"no Auto Scaling group {self.group_name}")
        ids = [i["InstanceId"] for i in groups["AutoScalingGroups"][0]["Instances"]]
        if not ids:
            return []
        reservations = self.ec2.describe_instances(InstanceIds=ids)["Reservations"]
        return [i["InstanceId"] for r in reservations for i in r["Instances"] if i["ImageId"] != image_id]

    def replace(self, image_id: str) -> str | None:
        """Refresh until no instance runs another image; None, or what went wrong."""
        outdated = self.outdated(image_id)
        if not outdated:
            self._log(f"every instance runs {image_id}: nothing to refresh")
            return None
        self._log(f"refreshing {len(outdated)} instance(s) to {image_id}")
        r = self.refresh
        refresh_id = self.autoscaling.start_instance_refresh(
            AutoScalingGroupName=self.group_name,
            Strategy="Rolling",
            Preferences={
                "MinHealthyPercentage": r.min_healthy_percentage,
                "CheckpointPercentages": r.checkpoints,
                "CheckpointDelay": r.checkpoint_delay_seconds,
                "SkipMatching": False,
                "AutoRollback": False,
                "AlarmSpecification": {"Alarms": self.alarm_names},
                "ScaleInProtectedInstances": "Wait",
                "StandbyInstances": "Wait",
            },
        )["InstanceRefreshId"]
        return self._wait(refresh_id)

    def _wait(self, refresh_id: str) -> str | None:
        deadline = self.clock() + self.refresh.timeout_seconds
        while True:
            found = self.autoscaling.describe_instance_refreshes(
                AutoScalingGroupName=self.group_name, InstanceRefreshIds=[refresh_id]
            )["InstanceRefreshes"]
            status = found[0]["Status"] if found else "Unknown"
            if status in DONE:
                if status == "Successful":
                    return None
                return f"instance refresh {refresh_id} {status}: {found[0].get('StatusReason', '')}".rstrip(
                    ": "
                )
            if self.clock() >= deadline:
                self.autoscaling.cancel_instance_refresh(AutoScalingGroupName=self.group_name)
                return f"instance refresh {refresh_id} still {status} after {self.refresh.timeout_seconds:g} s (cancelled)"
            self.sleep(self.refresh.poll_seconds)
