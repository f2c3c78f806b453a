"""Run the stand-in as a child process on a free loopback port (tests, benchmarks).

with spawn_standin(["--report-latencies"]) as base_url:   # "http://127.0.0.1:PORT"
    AsyncOpenAI(base_url=base_url + "/v1", api_key="EMPTY")
"""

from __future__ import annotations

from synapscribe_local.services import ServiceStartError, SubcommandService, free_port

__all__ = ["StandinStartError", "free_port", "spawn_standin"]


class StandinStartError(ServiceStartError):
    """The stand-in did not come up (its output is in the message)."""


#: `with spawn_standin(ARGS, env=..., timeout=...) as base_url:`; StandinStartError if it fails.
spawn_standin = SubcommandService("standin", "/v1/models", "stand-in", StandinStartError)
