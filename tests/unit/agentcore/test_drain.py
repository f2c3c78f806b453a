"""The drain's state machine, the signal handling that keeps the exit status 0, and the routes
that refuse new work while draining (the real-process drain is tests/integration)."""

from __future__ import annotations

import signal
import time

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from synapscribe.agentcore.app import create_app
from synapscribe.agentcore.drain import DRAINING_MESSAGE, Drain, DrainingServer
from synapscribe.edge.agentcore_client import AgentCoreBusy, post_job
from synapscribe.platform import PlatformConfigError, load_platform, parse_platform
from synapscribe_local.standin.process import free_port

from .agentcore_offline import offline_deps


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


JOB = {
    "connectionId": "c",
    "owner": "eu-west-1:student-1",
    "sessionId": "ses_x",
    "requestId": "r1",
    "text": "a",
    "receivedAtMs": 1,
}


def test_drain_finishes_when_idle_or_at_the_timeout() -> None:
    clock = Clock()
    in_flight = [2]
    drain = Drain(30, clock)
    drain.watch(lambda: in_flight[0])
    assert not drain.draining and not drain.finished()
    assert drain.begin() and not drain.begin()
    assert drain.draining and not drain.finished()
    clock.now += 29.9
    assert not drain.finished()
    in_flight[0] = 0
    assert drain.finished()
    in_flight[0] = 1
    clock.now += 0.1
    assert drain.finished() and drain.elapsed() == pytest.approx(30)
    with pytest.raises(ValueError, match="positive"):
        Drain(0)


def test_first_signal_drains_second_exits_and_nothing_is_re_raised() -> None:
    drain = Drain(30)
    server = DrainingServer(uvicorn.Config(FastAPI()), drain)
    server.handle_exit(signal.SIGTERM, None)
    assert drain.draining and not server.should_exit
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not server.force_exit
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit
    # uvicorn re-raises what it recorded after shutting down (exit -15): nothing is recorded.
    assert server._captured_signals == []


async def test_on_tick_exits_once_the_drain_is_over() -> None:
    in_flight = [1]
    drain = Drain(30)
    drain.watch(lambda: in_flight[0])
    server = DrainingServer(uvicorn.Config(FastAPI()), drain)
    assert await server.on_tick(1) is False
    server.handle_exit(signal.SIGTERM, None)
    assert await server.on_tick(2) is False
    in_flight[0] = 0
    assert await server.on_tick(3) is True


async def test_the_host_leaves_the_registry_first_when_the_drain_begins() -> None:
    """agentcore/registration.py hangs its `leave` on the drain: run once, on the first tick of
    the drain, before anything else (the edge then routes the host's lectures elsewhere)."""
    left: list[float] = []

    async def leave() -> None:
        left.append(time.monotonic())

    drain = Drain(30)
    drain.on_begin.append(leave)
    server = DrainingServer(uvicorn.Config(FastAPI()), drain)
    await server.on_tick(1)
    assert left == []
    server.handle_exit(signal.SIGTERM, None)
    await server.on_tick(2)
    await server.on_tick(3)
    assert len(left) == 1


def test_draining_agentcore_refuses_new_work_with_503() -> None:
    deps = offline_deps()
    drain = Drain(30)
    app = create_app(None, None, deps, drain=drain)
    job = JOB
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503  # model server and TTS are closed ports
        assert "draining" not in client.get("/ready").json()
        drain.begin()
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        query = client.post("/v1/queries", json=job)
        assert query.status_code == 503 and query.json()["detail"] == DRAINING_MESSAGE
        transcribe = client.post("/v1/lectures/lec_x/transcribe", json={})
        assert transcribe.status_code == 503 and transcribe.json()["draining"] is True
        assert client.get("/health").status_code == 200
        assert deps.tasks == set()


def test_drain_timeout_is_validated_and_fits_the_spot_notice() -> None:
    p = load_platform()
    assert p.agentcore_stop_timeout_seconds > p.agentcore.drain_timeout_seconds
    assert p.derived()["agentcore_stop_timeout_seconds"] == p.agentcore_stop_timeout_seconds
    for bad in (0, 200):
        data = p.model_dump()
        data["agentcore"]["drain_timeout_seconds"] = bad
        with pytest.raises(PlatformConfigError, match=r"agentcore\.drain_timeout_seconds"):
            parse_platform(data)


def test_edge_maps_the_drain_refusal_to_busy() -> None:
    # The edge's own client against a draining AgentCore on a real port (uvicorn in a thread).
    import threading
    import time

    drain = Drain(30)
    drain.begin()
    deps = offline_deps()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(None, None, deps, drain=drain), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(AgentCoreBusy, match="draining"):
            post_job(f"http://127.0.0.1:{port}", "/v1/queries", JOB, timeout=5)
    finally:
        server.should_exit = True
        thread.join(10)
