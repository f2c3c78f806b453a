"""Shared pieces of the edge tests (no tests here): deps on moto, a recording AgentCore HTTP
server on loopback, the pushes moto's @connections API received, generated audio."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_test_env import TEST_RESOURCES
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from required_tools import require_tools
from synapscribe.edge import validate_lecture, websocket_handler
from synapscribe.edge.config import EdgeDeps, build_deps
from synapscribe.platform import load_platform
from synapscribe.provision import provision
from synapscribe.settings import AwsResources

# moto's @connections API answers on any execute-api host (without a stage path).
CONNECTIONS_ENDPOINT = "https://abc123.execute-api.eu-west-1.amazonaws.com"
REGION = "eu-west-1"


@dataclass
class AgentCoreRecorder:
    """A real HTTP server standing where AgentCore listens; answers `status` and records jobs."""

    url: str = ""
    status: int = 202
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: run on each job before answering (e.g. AgentCore's claim), then wait `delay` seconds
    on_job: Callable[[dict[str, Any]], None] | None = None
    delay: float = 0.0

    def reset(self) -> None:
        self.status = 202
        self.requests.clear()
        self.on_job = None
        self.delay = 0.0


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


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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


def pushed(connection_id: str) -> list[dict[str, Any]]:
    """Every message posted to a connection through moto's @connections API, in order."""
    backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
    data = backend.connections[connection_id].data.decode() if connection_id in backend.connections else ""
    decoder = json.JSONDecoder()
    out, pos = [], 0
    while pos < len(data):
        obj, pos = decoder.raw_decode(data, pos)
        out.append(obj)
    return out


def table_snapshot(deps: EdgeDeps) -> dict[str, list[dict[str, Any]]]:
    """Every item of every table and every S3 key: compared before and after a bad message."""
    snap: dict[str, list[dict[str, Any]]] = {}
    for name, table in (
        ("connections", deps.store.connections),
        ("lectures", deps.store.lectures),
        ("sessions", deps.store.sessions),
    ):
        snap[name] = sorted(
            table.scan(ConsistentRead=True)["Items"], key=lambda i: json.dumps(i, default=str)
        )
    listing = deps.s3.list_objects_v2(Bucket=deps.resources.bucket).get("Contents", [])
    snap["s3"] = [{"key": o["Key"], "size": o["Size"], "etag": o["ETag"]} for o in listing]
    return snap


# --------------------------------------------------------------------------- audio


def need_tools(*names: str) -> None:
    """Fails (never skips) naming the missing tool: scripts/setup installs them."""
    require_tools(*names)


def speech_wav(path: Path, text: str = "Photosynthesis turns light into chemical energy.") -> Path:
    need_tools("espeak-ng")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def encode(wav: Path, out: Path, *extra: str) -> Path:
    need_tools("ffmpeg")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *extra, str(out)],
        check=True,
        capture_output=True,
    )
    return out


def cbr_mp3(out: Path, seconds: float, bitrate_kbps: int = 32) -> Path:
    """A CBR MP3 of a tone, without a Xing/Info frame (its duration comes from size/bitrate)."""
    need_tools("ffmpeg")
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=440:duration={seconds}", "-ac", "1", "-ar", "22050",
            "-b:a", f"{bitrate_kbps}k", "-write_xing", "0", "-id3v2_version", "0", str(out),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out


# --------------------------------------------------------------------------- events


def ws_event(
    route: str,
    connection_id: str,
    body: str | None = None,
    identity: str | None = None,
    cognito: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    rc: dict[str, Any] = {
        "routeKey": route,
        "connectionId": connection_id,
        "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "stage": "prod",
        "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
        "identity": {"cognitoIdentityId": cognito} if cognito else {},
    }
    event: dict[str, Any] = {"requestContext": rc, "isBase64Encoded": base64_body}
    if body is not None:
        event["body"] = body
    if route == "$connect" and identity is not None:
        event["queryStringParameters"] = {"identity": identity}
    return event


def s3_event(bucket: str, key: str, size: int = 0, name: str = "ObjectCreated:Post") -> dict[str, Any]:
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "awsRegion": REGION,
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": size}},
            }
        ]
    }
