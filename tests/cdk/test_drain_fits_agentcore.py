"""AgentCore's own drain (SIGTERM, platform.yaml `agentcore.drain_timeout_seconds`) fits inside what
the CDK app gives a terminating instance: the drain wait, the lifecycle hook and the balancer's
deregistration delay of every environment in cdk.json."""

from __future__ import annotations

import copy

import pytest
from synapscribe.platform import SPOT_NOTICE_SECONDS, load_platform
from synapscribe_cdk.application import default_context
from synapscribe_cdk.config import ENVIRONMENTS_KEY, load_environment
from synapscribe_cdk.constructs.spot_drain import DRAIN_OVERHEAD


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_agentcore_drain_fits_each_environment(name: str) -> None:
    config = load_environment(copy.deepcopy(default_context()[ENVIRONMENTS_KEY]), name)
    p = load_platform()
    drain = p.agentcore.drain_timeout_seconds
    assert drain <= config.drain_seconds, (
        f"{name}: agentcore.drain_timeout_seconds ({drain:g}) exceeds drain_seconds ({config.drain_seconds})"
    )
    # If the drain function fails, the hook's heartbeat still covers a whole stop of AgentCore.
    assert p.agentcore_stop_timeout_seconds <= config.drain_seconds + DRAIN_OVERHEAD
    assert p.agentcore_stop_timeout_seconds < SPOT_NOTICE_SECONDS
