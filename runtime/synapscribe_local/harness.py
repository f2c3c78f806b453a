"""AgentCore with real neighbours on loopback, for the integration tests and `bench pipeline`.

Test support that `bench pipeline` also runs, so it lives beside the local stack (not in the
production package `agentcore`). Starts the local stack's moto server (local/aws.py) with the
platform's bucket and tables, a tiny @connections
receiver that records what AgentCore pushes, the model stand-in, the TTS service and AgentCore
itself as child processes; and helps put lectures and sessions in place and run queries.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
from synapscribe import keys
from synapscribe.contract import parse_server_message
from synapscribe.orphans import parent_env
from synapscribe.planner import plan_lecture
from synapscribe.platform import load_platform
from synapscribe.settings import AwsResources
from synapscribe.store import Store

from synapscribe_local.aws import LOCAL_CREDENTIALS, moto_server
from synapscribe_local.provision import provision
from synapscribe_local.standin.process import free_port, spawn_standin
from synapscribe_local.tts_process import offline_env, spawn_tts

REGION = "eu-west-1"
RESOURCES = {
    "SYNAPSCRIBE_BUCKET": "synapscribe-harness",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-harness-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-harness-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-harness-sessions",
    "SYNAPSCRIBE_LIMITS_TABLE": "synapscribe-harness-limits",
}
FAKE_CREDENTIALS = {
    **LOCAL_CREDENTIALS,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


# --------------------------------------------------------------------------- @connections


@dataclass
class Received:
    at: float  # epoch seconds
    message: dict[str, Any]


class ConnectionsReceiver:
    """`POST /@connections/{id}` on loopback: records each message (checked against the contract)."""

    def __init__(self) -> None:
        self.messages: dict[str, list[Received]] = {}
        self.invalid: list[str] = []
        self.gone: set[str] = set()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Kept-alive connections, as API Gateway's @connections endpoint keeps them: with
            # http.server's default HTTP/1.0 every push opened a new TCP connection, whose cost
            # (about a third of AgentCore's push CPU, py-spy) the deployed AgentCore never pays.
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                path = urllib.parse.unquote(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not path.startswith("/@connections/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                connection_id = path.removeprefix("/@connections/")
                if connection_id in receiver.gone:
                    gone = b'{"message":"GoneException"}'
                    self.send_response(410)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(gone)))
                    self.end_headers()
                    self.wfile.write(gone)
                    return
                try:
                    parse_server_message(body)
                except Exception as exc:
                    receiver.invalid.append(f"{body[:200]!r}: {exc}")
                with receiver._cond:
                    receiver.messages.setdefault(connection_id, []).append(
                        Received(time.time(), json.loads(body))
                    )
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ConnectionsReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of(self, connection_id: str) -> list[Received]:
        with self._cond:
            return list(self.messages.get(connection_id, []))

    def wait_for(self, connection_id: str, done: Any, timeout: float = 30.0) -> list[Received]:
        """Wait until `done(messages)` holds for the connection's messages; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = list(self.messages.get(connection_id, []))
                if done(got):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"connection {connection_id}: still waiting after {timeout} s; got {got}"
                    )
                self._cond.wait(left)

    def wait_final(self, connection_id: str, request_id: str, timeout: float = 30.0) -> list[Received]:
        """The messages of one request, up to its `answer` or `error`."""

        def finished(got: list[Received]) -> bool:
            return any(
                r.message.get("requestId") == request_id and r.message.get("type") in ("answer", "error")
                for r in got
            )

        got = self.wait_for(connection_id, finished, timeout)
        return [r for r in got if r.message.get("requestId") == request_id]


# --------------------------------------------------------------------------- processes


def _moto_session() -> boto3.session.Session:
    """Fake credentials: moto accepts anything, and nothing here can reach real AWS."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


def aws_env(endpoint: str) -> dict[str, str]:
    return {**FAKE_CREDENTIALS, **RESOURCES, "AWS_ENDPOINT_URL": endpoint}


@dataclass
class AgentCoreProcess:
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> list[dict[str, Any]]:
        """The per-query figures AgentCore logs (logger synapscribe.agentcore.metrics)."""
        out = []
        for line in self.log_text().splitlines():
            marker = "synapscribe.agentcore.metrics: "
            if marker in line:
                out.append(json.loads(line.split(marker, 1)[1]))
        return out


@contextlib.contextmanager
def spawn_agentcore(env: Mapping[str, str], timeout: float = 30.0) -> Iterator[AgentCoreProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "synapscribe.cli", "agentcore", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "agentcore.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **parent_env(), **env}
            )
        process = AgentCoreProcess(url, log_path, proc)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"AgentCore did not start ({' '.join(cmd)}):\n{process.log_text()}")
                time.sleep(0.05)
            yield process
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


# --------------------------------------------------------------------------- the rig


@dataclass
class AgentCoreRig:
    """AgentCore as a process with its neighbours (moto, @connections receiver, stand-in, TTS).
    Not a "stack": that word means the whole platform (the local stack, the deployed one)."""

    aws_endpoint: str
    receiver: ConnectionsReceiver
    standin_url: str | None
    tts_url: str
    agentcore: AgentCoreProcess
    env: dict[str, str]
    store: Store = field(init=False)
    s3: Any = field(init=False)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        session = _moto_session()
        resources = AwsResources.model_validate(
            {k.removeprefix("SYNAPSCRIBE_").lower(): v for k, v in RESOURCES.items()}
        )
        self.s3 = session.client("s3", endpoint_url=self.aws_endpoint)
        self.store = Store(
            resources, load_platform(), session.resource("dynamodb", endpoint_url=self.aws_endpoint)
        )
        self.bucket = resources.bucket
        # One pooled client for every thread: a client per call costs a TLS context (tens of ms
        # of CPU under the GIL) even for plain HTTP, which would delay a burst's submissions.
        self.http = httpx.Client(base_url=self.agentcore.url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def connect(self, connection_id: str, owner: str) -> None:
        """Record the connection as the edge's $connect does (submit does it when not yet done)."""
        if self.store.get_connection(connection_id) is None:
            self.store.put_connection(connection_id, owner)

    # -- state ---------------------------------------------------------------

    def put_lecture(
        self, owner: str, audio: Path, status: str = "ready", connection_id: str | None = None
    ) -> dict[str, Any]:
        """A lecture as the validation Lambda leaves it: uploaded, measured and planned."""
        from synapscribe_local import audiogen

        lecture_id = keys.new_id("lec")
        ext = audio.suffix.lstrip(".")
        key = keys.lecture_key(owner, lecture_id, ext)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=audio.read_bytes())
        seconds = audiogen.duration_seconds(audio)
        plan = plan_lecture(seconds)
        self.store.create_pending_lecture(
            lecture_id,
            owner,
            key,
            "audio/mpeg" if ext == "mp3" else "audio/wav",
            audio.stat().st_size,
            connection_id,
            audio.name,
        )
        fields: dict[str, Any] = {
            "durationSeconds": round(seconds, 3),
            "format": ext,
            "sizeBytes": audio.stat().st_size,
        }
        if plan.mode == "audio":
            fields.update(status=status, contextMode="audio")
        elif plan.mode == "transcript":
            fields.update(status="transcribing" if status == "ready" else status, contextMode="transcript")
        else:
            fields.update(status="rejected", reason=plan.reason)
        updated = self.store.update_lecture(lecture_id, fields)
        assert updated is not None
        return updated

    def transcribe(self, lecture_id: str, connection_id: str, timeout: float = 120.0) -> dict[str, Any]:
        resp = self.http.post(f"/v1/lectures/{lecture_id}/transcribe", json={"connectionId": connection_id})
        resp.raise_for_status()
        got = self.receiver.wait_for(
            connection_id,
            lambda ms: any(
                r.message.get("type") == "lecture" and r.message.get("lectureId") == lecture_id for r in ms
            ),
            timeout,
        )
        return next(
            r.message
            for r in got
            if r.message.get("type") == "lecture" and r.message["lectureId"] == lecture_id
        )

    def start_session(self, owner: str, lecture: Mapping[str, Any]) -> str:
        session_id = keys.new_id("ses")
        self.store.create_session(session_id, owner, lecture["lectureId"], lecture["contextMode"])
        return session_id

    # -- queries -------------------------------------------------------------

    def submit(
        self,
        owner: str,
        session_id: str,
        connection_id: str,
        *,
        text: str | None = None,
        audio: bytes | None = None,
        query_key: str | None = None,
        voice: bool = True,
        request_id: str | None = None,
    ) -> str:
        import base64

        request_id = request_id or keys.new_id("req")
        self.connect(connection_id, owner)
        job: dict[str, Any] = {
            "connectionId": connection_id,
            "owner": owner,
            "sessionId": session_id,
            "requestId": request_id,
            "voice": voice,
            "receivedAtMs": int(time.time() * 1000),
        }
        if text is not None:
            job["text"] = text
        if audio is not None:
            job["audio"] = base64.b64encode(audio).decode("ascii")
        if query_key is not None:
            job["queryKey"] = query_key
        resp = self.http.post("/v1/queries", json=job)
        if resp.status_code != 202:
            raise RuntimeError(f"AgentCore refused the job: {resp.status_code} {resp.text}")
        return request_id

    def ask(
        self, owner: str, session_id: str, connection_id: str, timeout: float = 60.0, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Submit one query and return its messages, up to the answer or error."""
        request_id = self.submit(owner, session_id, connection_id, **kwargs)
        return [r.message for r in self.receiver.wait_final(connection_id, request_id, timeout)]


@contextlib.contextmanager
def agentcore_rig(
    *,
    standin_args: Sequence[str] = (),
    tts_env: Mapping[str, str] | None = None,
    agentcore_env: Mapping[str, str] | None = None,
    with_standin: bool = True,
    tts_url: str | None = None,
) -> Iterator[AgentCoreRig]:
    """AgentCore and its neighbours on loopback. `with_standin=False` points AgentCore at a closed port."""
    with contextlib.ExitStack() as es:
        endpoint = es.enter_context(moto_server(free_port()))
        env = aws_env(endpoint)
        session = _moto_session()
        provision(
            AwsResources.model_validate(
                {k.removeprefix("SYNAPSCRIBE_").lower(): v for k, v in RESOURCES.items()}
            ),
            session.client("s3", endpoint_url=endpoint),
            session.client("dynamodb", endpoint_url=endpoint),
        )
        receiver = ConnectionsReceiver().start()
        es.callback(receiver.stop)
        standin_url = es.enter_context(spawn_standin(standin_args)) if with_standin else None
        if tts_url is None:
            tts_url = es.enter_context(spawn_tts(env={**offline_env("espeak-ng"), **(tts_env or {})}))
        agent_env = {
            **env,
            "VLLM_BASE_URL": (standin_url or f"http://127.0.0.1:{free_port()}") + "/v1",
            "SYNAPSCRIBE_TTS_URL": tts_url,
            "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": receiver.url,
            **(agentcore_env or {}),
        }
        agentcore = es.enter_context(spawn_agentcore(agent_env))
        st = AgentCoreRig(endpoint, receiver, standin_url, tts_url, agentcore, agent_env)
        es.callback(st.close)
        yield st
