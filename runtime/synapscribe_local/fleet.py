"""The GPU fleet on the local stack (`synapscribe local --fleet-at-zero`): an Auto Scaling group
on moto standing for the deployed one, at desired capacity 0, and AgentCore started only once
the group's desired capacity is 1 or more, as a GPU host is launched in AWS.

The WebSocket handler talks to this group exactly as it does to the deployed one (edge/warming.py:
DescribeAutoScalingGroups, SetDesiredCapacity, through moto's HTTP endpoint), so a question asked
while nothing serves goes through the real warming path: connection refused, the group started,
`warming`, the question parked, and the sweeper handing it over once AgentCore is up.

Scaling back to 0 does not stop AgentCore here (the local stack has one host and no balancer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("synapscribe_local.fleet")

GROUP_NAME = "synapscribe-local-fleet"
#: An image id moto knows (its default AMIs); moto launches its pretend instances from it.
MOTO_IMAGE_ID = "ami-12c6146b"


class LocalFleet:
    def __init__(self, autoscaling: Any, start_host: Callable[[], None], name: str = GROUP_NAME) -> None:
        self.autoscaling = autoscaling
        self.start_host = start_host
        self.name = name
        self.started = False

    @classmethod
    def create(
        cls, autoscaling: Any, ec2: Any, region: str, start_host: Callable[[], None], name: str = GROUP_NAME
    ) -> LocalFleet:
        """The group at zero (MinSize 0, MaxSize 1, DesiredCapacity 0)."""
        ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": MOTO_IMAGE_ID})
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": name},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            AvailabilityZones=[f"{region}a"],
        )
        return cls(autoscaling, start_host, name)

    def desired(self) -> int:
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])

    def step(self) -> bool:
        """Start the host once the group wants one; True when it was started by this call."""
        if self.started or self.desired() < 1:
            return False
        log.info("fleet %s: desired capacity >= 1, starting AgentCore", self.name)
        self.start_host()
        self.started = True
        return True
