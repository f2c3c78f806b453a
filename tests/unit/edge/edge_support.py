"""Shared pieces of the edge tests (no tests; their fixtures are in conftest.py): the recording
AgentCore HTTP server, the pushes moto's @connections API received, generated audio, and messages
through the WebSocket handler and the validation Lambda."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import ClientError
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID
from required_tools import require_tools
from synapscribe.contract import select_route
from synapscribe.edge import validate_lecture, websocket_handler
from synapscribe.edge.config import EdgeDeps

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


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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


def speech_wav(path: Path, text: str = "Photosynthesis turns light into chemical energy.") -> Path:
    require_tools("espeak-ng")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def encode(wav: Path, out: Path, *extra: str) -> Path:
    require_tools("ffmpeg")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *extra, str(out)],
        check=True,
        capture_output=True,
    )
    return out


def cbr_mp3(out: Path, seconds: float, bitrate_kbps: int = 32) -> Path:
    """A CBR MP3 of a tone, without a Xing/Info frame (its duration comes from size/bitrate)."""
    require_tools("ffmpeg")
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
    source_ip: str | None = "198.51.100.7",
    routed: bool = True,
) -> dict[str, Any]:
    """An API Gateway WebSocket event. `$default` with a text body is routed as API Gateway
    would (contract.select_route) unless `routed` is False."""
    if routed and route == "$default" and body is not None and not base64_body:
        route = select_route(body)
    rc: dict[str, Any] = {
        "routeKey": route,
        "connectionId": connection_id,
        "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "stage": "prod",
        "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
        "identity": {
            **({"cognitoIdentityId": cognito} if cognito else {}),
            **({"sourceIp": source_ip} if source_ip else {}),
        },
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


# --------------------------------------------------------------------------- the WebSocket handler


def connect(d: EdgeDeps, cid: str, identity: str | None) -> dict[str, Any]:
    return websocket_handler.handle(ws_event("$connect", cid, identity=identity), d)


def send(d: EdgeDeps, cid: str, message: dict[str, Any] | str) -> list[dict[str, Any]]:
    before = len(pushed(cid))
    body = message if isinstance(message, str) else json.dumps(message)
    resp = websocket_handler.handle(ws_event("$default", cid, body=body), d)
    assert resp["statusCode"] == 200
    return pushed(cid)[before:]


def one(d: EdgeDeps, cid: str, message: dict[str, Any] | str) -> dict[str, Any]:
    out = send(d, cid, message)
    assert len(out) == 1, out
    return out[0]


def make_lecture(d: EdgeDeps, owner: str, status: str = "ready", mode: str = "audio") -> str:
    lecture_id = f"lec_{owner.replace(':', '').replace('.', '')}_{status}"
    key = f"lectures/{owner}/{lecture_id}.mp3"
    d.store.create_pending_lecture(lecture_id, owner, key, "audio/mpeg", 1000, None, "l.mp3")
    if status != "pending":
        fields: dict[str, Any] = {"status": status, "durationSeconds": 60.0}
        if status == "ready":
            fields["contextMode"] = mode
        if status == "rejected":
            fields["reason"] = "too long"
        d.store.update_lecture(lecture_id, fields)
    return lecture_id


# --------------------------------------------------------------------------- the validation Lambda

CONN = "conn-alice"


def upload(
    deps: EdgeDeps, data: bytes, content_type: str = "audio/mpeg", filename: str = "lecture.mp3"
) -> tuple[str, str]:
    """createUpload through the WebSocket handler, then the client's presigned POST."""
    if deps.store.get_connection(CONN) is None:
        assert (
            websocket_handler.handle(ws_event("$connect", CONN, identity="alice"), deps)["statusCode"] == 200
        )
    body = {
        "action": "createUpload",
        "kind": "lecture",
        "filename": filename,
        "contentType": content_type,
        "sizeBytes": max(len(data), 1),
    }
    websocket_handler.handle(ws_event("$default", CONN, body=json.dumps(body)), deps)
    answer = pushed(CONN)[-1]
    assert answer["type"] == "uploadUrl", answer
    resp = requests.post(answer["url"], data=answer["fields"], files={"file": (filename, data)}, timeout=30)
    assert resp.status_code == 204, resp.text
    return answer["uploadId"], answer["key"]


def validate(deps: EdgeDeps, key: str) -> dict[str, Any]:
    results = validate_lecture.handle(s3_event(deps.resources.bucket, key), deps)["results"]
    assert len(results) == 1
    return results[0]


def exists(deps: EdgeDeps, key: str) -> bool:
    return "Contents" in deps.s3.list_objects_v2(Bucket=deps.resources.bucket, Prefix=key)


def lecture_pushes() -> list[dict[str, Any]]:
    return [m for m in pushed(CONN) if m["type"] == "lecture"]


class GoneClient:
    """An @connections client whose every connection is gone (API Gateway's 410 GoneException)."""

    def __init__(self) -> None:
        self.calls = 0

    def post_to_connection(self, **kwargs: Any) -> None:
        self.calls += 1
        raise ClientError(
            {"Error": {"Code": "GoneException"}, "ResponseMetadata": {"HTTPStatusCode": 410}}, "Post"
        )
