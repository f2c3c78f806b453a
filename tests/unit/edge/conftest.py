"""Fixtures of the edge tests: moto with the platform's bucket and tables, a recording AgentCore
HTTP server on loopback, connected clients, a session and real recordings (helpers in
edge_support.py)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_test_env import TEST_RESOURCES
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from synapscribe.edge import validate_lecture, websocket_handler
from synapscribe.edge.config import EdgeDeps, build_deps
from synapscribe.platform import load_platform
from synapscribe.settings import AwsResources
from synapscribe_local.provision import provision

from .edge_support import (
    CONNECTIONS_ENDPOINT,
    REGION,
    AgentCoreRecorder,
    cbr_mp3,
    connect,
    encode,
    make_lecture,
    one,
    speech_wav,
)


@pytest.fixture(scope="module")
def agentcore_server() -> Iterator[AgentCoreRecorder]:
    recorder = AgentCoreRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            recorder.requests.append((self.path, body))
            if recorder.on_job is not None:
                recorder.on_job(body)
            time.sleep(recorder.delay)
            payload = json.dumps({"status": recorder.status}).encode()
            with contextlib.suppress(OSError):  # the client gave up waiting (a timeout test)
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def agentcore(agentcore_server: AgentCoreRecorder) -> AgentCoreRecorder:
    agentcore_server.reset()
    return agentcore_server


@pytest.fixture(scope="module")
def edge_world(agentcore_server: AgentCoreRecorder) -> Iterator[EdgeDeps]:
    """moto with the platform's bucket and tables, once per module (per-test state is cleared
    by `deps`): creating boto3 clients for every test would cost about a second each."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **TEST_RESOURCES,
            "SYNAPSCRIBE_AGENTCORE_URL": agentcore_server.url,
            "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": CONNECTIONS_ENDPOINT,
            "SYNAPSCRIBE_IDENTITY_SOURCE": "query",
        }
        for name, value in env.items():
            mp.setenv(name, value)
        with mock_aws():
            resources = AwsResources()
            provision(resources, boto3.client("s3"), boto3.client("dynamodb"))
            yield build_deps(load_platform())


@pytest.fixture
def deps(edge_world: EdgeDeps, agentcore: AgentCoreRecorder) -> Iterator[EdgeDeps]:
    d = edge_world
    for table, key in (
        (d.store.connections, "connectionId"),
        (d.store.lectures, "lectureId"),
        (d.store.sessions, "sessionId"),
        (d.store.limits, "limitId"),
    ):
        for item in table.scan(ConsistentRead=True)["Items"]:
            table.delete_item(Key={key: item[key]})
    for obj in d.s3.list_objects_v2(Bucket=d.resources.bucket).get("Contents", []):
        d.s3.delete_object(Bucket=d.resources.bucket, Key=obj["Key"])
    apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION].connections.clear()
    d.pushers.clear()
    websocket_handler.reset_deps()
    validate_lecture.reset_deps()
    yield d
    websocket_handler.reset_deps()
    validate_lecture.reset_deps()


@pytest.fixture
def alice(deps: EdgeDeps) -> str:
    assert connect(deps, "conn-alice", "alice")["statusCode"] == 200
    return "conn-alice"


@pytest.fixture
def bob(deps: EdgeDeps) -> str:
    assert connect(deps, "conn-bob", "bob")["statusCode"] == 200
    return "conn-bob"


@pytest.fixture
def session_id(deps: EdgeDeps, alice: str) -> str:
    lecture_id = make_lecture(deps, "alice", "ready")
    return str(one(deps, alice, {"action": "startSession", "lectureId": lecture_id})["sessionId"])


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real recordings made once per module: speech in every accepted container, plus long
    CBR MP3s whose duration follows from their size."""
    d = tmp_path_factory.mktemp("audio")
    wav = speech_wav(d / "speech.wav")
    files = {
        "wav": wav,
        "mp3": encode(wav, d / "speech.mp3", "-b:a", "64k"),
        "m4a": encode(wav, d / "speech.m4a"),
        "ogg": encode(wav, d / "speech.ogg", "-c:a", "libvorbis"),
        "flac": encode(wav, d / "speech.flac"),
        "aac": encode(wav, d / "speech.aac"),
        "webm": encode(wav, d / "speech.webm", "-c:a", "libopus"),
    }
    block = cbr_mp3(d / "block.mp3", 10, bitrate_kbps=8)
    data = block.read_bytes()
    max_audio = 552  # checked against the platform in test_long_files_straddle_the_limits
    (d / "transcript.mp3").write_bytes(data * (max_audio // 10 + 6))  # ~10 minutes
    (d / "too_long.mp3").write_bytes(data * 600)  # ~100 minutes
    files["transcript"] = d / "transcript.mp3"
    files["too_long"] = d / "too_long.mp3"
    return files
