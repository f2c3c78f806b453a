"""Lecture-affinity hand-offs (edge/affinity.py) over real HTTP on loopback and the host registry
(host_registry.py) in moto: a lecture's job goes to its own host; a host that refuses the
connection or is busy is passed over for the next; no live host means the balancer; and an
AgentCore host writes, refreshes and leaves its own registry item (agentcore/registration.py)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws
from synapscribe.agentcore.media_refs import HeldMedia
from synapscribe.agentcore.prompts import LectureAudioItem
from synapscribe.agentcore.registration import Registration
from synapscribe.edge import affinity, routing
from synapscribe.edge.agentcore_client import AgentCoreTimeout
from synapscribe.host_registry import HOST_KEY, Host, HostRegistry
from synapscribe.platform import load_platform
from synapscribe.store import TTL_ATTRIBUTE

TTL = 20.0


class Recorder:
    def __init__(self, status: int = 202, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.jobs: list[tuple[str, Any]] = []


@contextlib.contextmanager
def server(recorder: Recorder) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
            recorder.jobs.append((self.path, body))
            time.sleep(recorder.delay)
            with contextlib.suppress(OSError):
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def host(name: str, url: str, in_flight: int = 0) -> Host:
    return Host(name, url, True, in_flight, 8, time.time())


@pytest.fixture
def three() -> Iterator[tuple[dict[str, Recorder], dict[str, str]]]:
    recorders = {name: Recorder() for name in ("a", "b", "balancer")}
    with server(recorders["a"]) as a, server(recorders["b"]) as b, server(recorders["balancer"]) as lb:
        yield recorders, {"a": a, "b": b, "balancer": lb}


def post(urls: dict[str, str], hosts: list[Host], lecture: str, timeout: float = 2.0) -> int:
    return affinity.post_for_lecture(urls["balancer"], hosts, lecture, "/v1/queries", {"x": 1}, timeout, TTL)


def test_a_lectures_jobs_go_to_its_own_host(three: Any) -> None:
    recorders, urls = three
    hosts = [host("a", urls["a"]), host("b", urls["b"])]
    lectures = [f"lec_{n}" for n in range(20)]
    for lecture in lectures:
        assert post(urls, hosts, lecture) == 202
    owners = [routing.owner(lec, hosts) for lec in lectures]
    assert len(recorders["a"].jobs) == sum(1 for o in owners if o and o.host_id == "a")
    assert len(recorders["b"].jobs) == sum(1 for o in owners if o and o.host_id == "b")
    assert recorders["a"].jobs and recorders["b"].jobs and not recorders["balancer"].jobs


def test_a_refused_connection_or_a_busy_host_passes_to_the_next(three: Any) -> None:
    recorders, urls = three
    lecture = "lec_x"
    ranked = routing.ranked(lecture, [host("a", ""), host("b", "")])  # rank depends on names only
    owner, second = ranked[0].host_id, ranked[1].host_id
    hosts = [host(owner, closed_port_url()), host(second, urls["b"])]  # the lecture's host is down
    assert post(urls, hosts, lecture) == 202
    assert len(recorders["b"].jobs) == 1 and not recorders["balancer"].jobs
    recorders["b"].status = 503  # draining or full: the balancer takes it
    assert post(urls, [host(second, urls["b"])], lecture) == 202
    assert len(recorders["balancer"].jobs) == 1


def test_no_live_host_means_the_balancer(three: Any) -> None:
    recorders, urls = three
    stale = Host("a", urls["a"], True, 0, 8, time.time() - TTL - 1)
    unready = Host("b", urls["b"], False, 0, 8, time.time())
    assert post(urls, [], "lec") == 202 and post(urls, [stale, unready], "lec") == 202
    assert len(recorders["balancer"].jobs) == 2 and not recorders["a"].jobs and not recorders["b"].jobs


def test_a_timeout_is_not_sent_elsewhere(three: Any) -> None:
    """The host may have accepted the job: asking another would answer it twice."""
    recorders, urls = three
    recorders["a"].delay = recorders["b"].delay = 1.0
    with pytest.raises(AgentCoreTimeout):
        post(urls, [host("a", urls["a"]), host("b", urls["b"])], "lec", timeout=0.3)
    assert len(recorders["a"].jobs) + len(recorders["b"].jobs) == 1 and not recorders["balancer"].jobs


@pytest.fixture
def registry() -> Iterator[HostRegistry]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="eu-west-1")
        db.create_table(
            TableName="hosts",
            KeySchema=[{"AttributeName": HOST_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": HOST_KEY, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield HostRegistry.named("hosts", boto3.resource("dynamodb", region_name="eu-west-1"))


async def test_a_host_registers_beats_and_leaves(registry: HostRegistry) -> None:
    platform = load_platform()
    held = HeldMedia()
    held.remember([LectureAudioItem(0, 60, "", "mp3", None, "lec_abc-0-0123456789abcdef")])
    ready = True

    async def is_ready() -> bool:
        return ready

    reg = Registration(registry, "i-1", "http://10.0.0.5:5000", platform, held, lambda: 3, 8, is_ready)
    await reg.beat()
    [item] = registry.table.scan()["Items"]
    assert item["url"] == "http://10.0.0.5:5000" and item["lectures"] == ["lec_abc"]
    assert int(item[TTL_ATTRIBUTE]) - int(item["heartbeatAt"]) == platform.agentcore.registry_ttl_seconds
    [seen] = registry.hosts()
    assert (seen.host_id, seen.ready, seen.in_flight, seen.target) == ("i-1", True, 3, 8)
    ready = False
    await reg.beat()
    assert registry.hosts()[0].ready is False
    await reg.leave()
    assert registry.hosts() == []
    await reg.beat()  # after leaving: never written again
    assert registry.hosts() == []
