"""The local stack's fleet emulation (local/fleet.py) on moto: AgentCore is started only once the
group's desired capacity is 1 or more, and only once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from synapscribe.edge.warming import start_one
from synapscribe_local.fleet import GROUP_NAME, LocalFleet


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield (
            boto3.client("autoscaling", region_name="eu-west-1"),
            boto3.client("ec2", region_name="eu-west-1"),
        )


def test_the_host_starts_when_the_group_is_scaled_out_and_only_once(aws: tuple[Any, Any]) -> None:
    autoscaling, ec2 = aws
    started: list[int] = []
    fleet = LocalFleet.create(autoscaling, ec2, "eu-west-1", lambda: started.append(1))
    assert fleet.name == GROUP_NAME and fleet.desired() == 0
    assert fleet.step() is False and started == []
    # What the WebSocket handler does when no host answers (edge/warming.py).
    assert start_one(autoscaling, GROUP_NAME) is True
    assert fleet.desired() == 1
    assert fleet.step() is True and started == [1]
    assert fleet.step() is False and started == [1]
    # Idempotent: a group already at 1 is left as it is.
    assert start_one(autoscaling, GROUP_NAME) is True and fleet.desired() == 1


def test_a_group_that_may_run_nothing_is_not_started(aws: tuple[Any, Any]) -> None:
    autoscaling, ec2 = aws
    fleet = LocalFleet.create(autoscaling, ec2, "eu-west-1", lambda: None)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=GROUP_NAME, MaxSize=0)
    assert start_one(autoscaling, GROUP_NAME) is False and fleet.desired() == 0
    with pytest.raises(LookupError):
        start_one(autoscaling, "no-such-group")
