"""AgentCore deps with nothing behind them: model server and TTS on closed loopback ports, no AWS
(for tests of AgentCore's own routes: readiness, draining, diagnostics)."""

from __future__ import annotations

from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.platform import load_platform
from synapscribe_local.services import free_port


class _NoAws:
    def close(self) -> None:
        pass


def offline_deps() -> AgentCoreDeps:
    closed = f"http://127.0.0.1:{free_port()}"
    return AgentCoreDeps(
        platform=load_platform(),
        aws=_NoAws(),  # type: ignore[arg-type]
        vllm=VllmClient(closed + "/v1", "m", None, 1.0),
        tts=TtsClient(closed, 1.0),
        admission=adm.Admission(1, 1.0),
        lectures=None,  # type: ignore[arg-type]
    )
