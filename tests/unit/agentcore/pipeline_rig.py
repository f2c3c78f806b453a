"""AgentCore's query pipeline in-process for the tests under tests/unit/agentcore/: the real stand-in
app (ASGI), moto for S3/DynamoDB, fake TTS and a recording @connections client that checks every
pushed message against the contract. conftest.py's `make_rig` fixture builds one with `build_rig`. (Not the local harness's
`synapscribe_local.harness.agentcore_rig`, which runs AgentCore as a process with its neighbours.)"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import httpx2
from botocore.exceptions import ClientError
from synapscribe import keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.lectures import LectureContexts
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.connections import ConnectionPusher
from synapscribe.contract import parse_server_message
from synapscribe.platform import PlatformConfig
from synapscribe.settings import AwsResources
from synapscribe.store import Store
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.server import create_app as create_standin

OWNER = "eu-west-1:alice"
FAKE_MP3 = b"\xff\xf3" + b"\x00" * 400


class FakeGateway:
    """apigatewaymanagementapi's post_to_connection, recorded."""

    def __init__(self) -> None:
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.gone: set[str] = set()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if ConnectionId in self.gone:
            raise ClientError({"Error": {"Code": "GoneException"}}, "PostToConnection")
        parse_server_message(Data)
        self.messages.setdefault(ConnectionId, []).append(json.loads(Data))


@dataclass
class Rig:
    deps: AgentCoreDeps
    gateway: FakeGateway
    store: Store
    s3: Any
    bucket: str
    platform: PlatformConfig
    vllm_bodies: list[dict[str, Any]] = field(default_factory=list)
    lecture: dict[str, Any] = field(default_factory=dict)

    def session(self, owner: str = OWNER) -> str:
        session_id = keys.new_id("ses")
        self.store.create_session(session_id, owner, self.lecture["lectureId"], self.lecture["contextMode"])
        return session_id

    async def ask(self, session_id: str, connection: str = "c1", **kw: Any) -> list[dict[str, Any]]:
        request_id = keys.new_id("req")
        if self.store.get_connection(connection) is None:  # $connect, as the edge records it
            self.store.put_connection(connection, kw.get("owner", OWNER))
        job = query_job(session_id, connection, request_id=request_id, **kw)
        await QueryPipeline(self.deps).run(job)
        return [m for m in self.gateway.messages.get(connection, []) if m.get("requestId") == request_id]


def query_job(
    session_id: str, connection: str = "c1", *, owner: str = OWNER, request_id: str | None = None, **kw: Any
) -> QueryJob:
    """A question as the edge hands it over (`text=`, `audio=` or `queryKey=`, `voice=`, …), received now."""
    return QueryJob(
        connectionId=connection,
        owner=owner,
        sessionId=session_id,
        requestId=request_id or keys.new_id("req"),
        receivedAtMs=int(time.time() * 1000),
        **kw,
    )


def tts_ok(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert body["response_format"] == "mp3" and body["input"]
    return httpx.Response(200, content=FAKE_MP3, headers={"X-TTS-Engine": "espeak-ng", "X-TTS-Cache": "miss"})


def tts_down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@asynccontextmanager
async def build_rig(
    aws: AwsResources,
    platform: PlatformConfig,
    lecture_file: bytes,
    *,
    tts: Callable[[httpx.Request], httpx.Response] = tts_ok,
    vllm_up: bool = True,
    limit: int | None = None,
    queue_timeout: float = 5.0,
    p: PlatformConfig | None = None,
    lecture_bytes: bytes | None = None,
    duration: float = 90.0,  # the lecture's measured durationSeconds (lecture_file is 1.5 min)
    standin: Callable[[StandinConfig], Any] = create_standin,
) -> AsyncIterator[Rig]:
    """A ready audio-mode lecture (`lecture_bytes`, default `lecture_file`) and the clients around
    the pipeline; `p` overrides the platform, `standin` makes the model app from its config."""
    p = p or platform
    lecture_bytes = lecture_file if lecture_bytes is None else lecture_bytes
    gateway = FakeGateway()
    store = Store(aws, p)
    aws_io = AwsIo(store, aws.bucket, ConnectionPusher("http://gateway.test", client=gateway))
    standin_app = standin(StandinConfig.from_platform(p))
    bodies: list[dict[str, Any]] = []

    class Recording(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.ASGITransport(app=standin_app)

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if not vllm_up:
                raise httpx2.ConnectError("connection refused", request=request)
            if request.url.path.endswith("/chat/completions"):
                bodies.append(json.loads(await request.aread()))
            return await self.inner.handle_async_request(request)

    vllm = VllmClient(
        "http://vllm.test/v1",
        p.model.served_name,
        None,
        5.0,
        http_client=httpx2.AsyncClient(transport=Recording()),
    )
    tts_client = TtsClient(
        "http://tts.test", 5.0, http_client=httpx.AsyncClient(transport=httpx.MockTransport(tts))
    )
    admission = adm.Admission(limit or p.vllm.max_num_seqs, queue_timeout)
    deps = AgentCoreDeps(
        platform=p,
        aws=aws_io,
        vllm=vllm,
        tts=tts_client,
        admission=admission,
        lectures=LectureContexts(aws_io, vllm, admission, p),
        voice="en",
    )
    s3 = boto3.client("s3")
    lecture_id = keys.new_id("lec")
    key = keys.lecture_key(OWNER, lecture_id, "mp3", p)
    s3.put_object(Bucket=aws.bucket, Key=key, Body=lecture_bytes)
    store.create_pending_lecture(lecture_id, OWNER, key, "audio/mpeg", 1, "c0", "lecture.mp3")
    lecture = store.update_lecture(
        lecture_id, {"status": "ready", "contextMode": "audio", "durationSeconds": duration}
    )
    assert lecture is not None
    rig = Rig(deps, gateway, store, s3, aws.bucket, p, bodies, lecture)
    try:
        yield rig
    finally:
        await vllm.aclose()
        await tts_client.aclose()
        aws_io.close()


def check_order(messages: list[dict[str, Any]], voice_in: bool) -> dict[str, Any]:
    """One final, last; a voice question's one transcript anywhere before it (the answer's text
    and audio do not wait for it); none for a typed question."""
    types = [m["type"] for m in messages]
    assert types[-1] in ("answer", "error") and types.count("answer") + types.count("error") == 1
    if voice_in and types[-1] == "answer":
        assert types.count("transcript") == 1, types
    elif not voice_in:
        assert "transcript" not in types
    return messages[-1]


def transcript_of(messages: list[dict[str, Any]]) -> str:
    [text] = [m["text"] for m in messages if m["type"] == "transcript"]
    return str(text)
