"""`/ready` compares the context AgentCore plans for with the one the model server reports on
`/v1/models`: a server with less would refuse the largest requests, so AgentCore is not ready and
says which two values differ. (The real engine's refusals themselves: tests/engine/.)"""

from __future__ import annotations

import httpx
import pytest
from synapscribe.platform import load_platform
from synapscribe_local.harness import agentcore_rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_ready_refuses_a_model_server_with_a_smaller_context() -> None:
    served = load_platform().vllm.max_model_len  # the stand-in serves the platform's context
    with agentcore_rig(agentcore_env={"SYNAPSCRIBE_MAX_MODEL_LEN": str(2 * served)}) as s:
        response = httpx.get(s.agentcore.url + "/ready", timeout=10)
    assert response.status_code == 503, response.text
    (problem,) = response.json()["missing"]
    assert f"with a context of {served} tokens; AgentCore plans for {2 * served}" in problem
    assert "SYNAPSCRIBE_MAX_MODEL_LEN" in problem
