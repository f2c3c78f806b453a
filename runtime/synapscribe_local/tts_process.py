"""Run the TTS service as a child process on a free loopback port (tests, benchmarks, local stack).

with spawn_tts(env={"SYNAPSCRIBE_TTS_ENGINES": "espeak-ng"}) as base_url:   # "http://127.0.0.1:PORT"
    httpx.post(base_url + "/v1/audio/speech", json={"input": "Hello.", "voice": "en"})

`offline_env()` gives the environment for a hermetic run on any machine: gTTS first, but its
HTTPS goes to a loopback proxy port nobody listens on, so it fails at once and espeak-ng speaks.
"""

from __future__ import annotations

from synapscribe_local.services import ServiceStartError, SubcommandService, free_port

__all__ = ["TtsStartError", "free_port", "offline_env", "spawn_tts"]


class TtsStartError(ServiceStartError):
    """The TTS service did not come up (its output is in the message)."""


def offline_env(engines: str = "gtts,espeak-ng") -> dict[str, str]:
    """Environment in which Google is unreachable (connection refused), whatever the network."""
    refused = f"http://127.0.0.1:{free_port()}"
    return {
        "SYNAPSCRIBE_TTS_ENGINES": engines,
        "HTTPS_PROXY": refused,
        "https_proxy": refused,
        "HTTP_PROXY": refused,
        "http_proxy": refused,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


#: `with spawn_tts(ARGS, env=..., timeout=...) as base_url:`; TtsStartError if it fails.
spawn_tts = SubcommandService("tts", "/health", "TTS service", TtsStartError)
