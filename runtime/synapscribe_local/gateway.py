"""A loopback stand-in for API Gateway's WebSocket API.

It routes as API Gateway does (route key from `$request.body.action`, `$connect`,
`$disconnect`, `$default`), builds API Gateway-shaped Lambda events, runs the same handler code
in a thread per message (concurrently, as API Gateway invokes Lambda), and serves the
`@connections` management API (`POST`/`GET`/`DELETE /{stage}/@connections/{id}`) that boto3's
`apigatewaymanagementapi` client calls, answering 410 for a connection that is gone.

Two things API Gateway would do differently are answered per the client contract instead: a
message over the size limit gets `too_large` (API Gateway closes the connection) and a binary
frame gets `bad_request`; neither closes the connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from synapscribe.contract import ContractError, parse_client_message, select_route
from synapscribe.platform import PlatformConfig, load_platform
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from synapscribe_local.websocket_events import LiveConnection, WebSocketEvents, now_ms

log = logging.getLogger("synapscribe_local.gateway")

LambdaHandler = Callable[[dict[str, Any], Any], Any]
#: API Gateway's answer to a client when the integration fails.
INTERNAL_SERVER_ERROR = "Internal server error"
#: Frames larger than this are refused by the WebSocket library itself (closing the connection);
#: anything between the contract's limit and this is answered `too_large`.
TRANSPORT_MAX_BYTES = 16 * 1024 * 1024


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers use."""

    function_name: str
    timeout_seconds: float = 29.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._start)) * 1000))


#: The header a test names its client's address with (only with `trust_source_header`).
SOURCE_HEADER = "X-Synapscribe-Test-Source-Ip"
#: The local stack's environment variable that turns `trust_source_header` on (tests set it).
TRUST_SOURCE_HEADER_ENV = "SYNAPSCRIBE_LOCAL_TRUST_SOURCE_HEADER"


def new_connection_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters ending in '=')."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


class Gateway:
    """The WebSocket API (port `port`) and its `@connections` endpoint (port `connections_port`)."""

    def __init__(
        self,
        handler: LambdaHandler,
        *,
        host: str = "127.0.0.1",
        port: int,
        connections_port: int,
        stage: str = "local",
        route_keys: Iterable[str] = (),
        two_way_routes: bool = False,
        platform: PlatformConfig | None = None,
        workers: int = 16,
        trust_source_header: bool = False,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.connections_port = connections_port
        self.stage = stage
        self.route_keys = frozenset(route_keys)
        self.two_way_routes = two_way_routes
        self.platform = platform or load_platform()
        self.api_id = "local"
        self.events = WebSocketEvents(stage, f"{host}:{port}", self.api_id)
        #: Test mode only: a connection's source address from SOURCE_HEADER, so one test can
        #: stand for clients on many addresses (every loopback client is 127.0.0.1 otherwise).
        self.trust_source_header = trust_source_header
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._live: dict[str, LiveConnection] = {}
        self._pending: dict[ServerConnection, LiveConnection] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def connections_endpoint(self) -> str:
        """What SYNAPSCRIBE_CONNECTIONS_ENDPOINT is set to (the stage path, as in AWS)."""
        return f"http://{self.host}:{self.connections_port}/{self.stage}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._http = ThreadingHTTPServer((self.host, self.connections_port), _connections_handler(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="connections-api", daemon=True).start()
        self._server = await serve(
            self._on_open,
            self.host,
            self.port,
            process_request=self._on_connect,
            max_size=TRANSPORT_MAX_BYTES,
            ping_interval=None,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def route_key_for(self, body: str) -> str:
        """API Gateway's route selection on `$request.body.action` (contract.select_route)."""
        return select_route(body, self.route_keys)

    async def _invoke(self, event: dict[str, Any], route_key: str) -> Any:
        assert self._loop is not None
        ctx = LambdaContext(function_name=f"websocket-handler{route_key}")
        started = time.monotonic()
        try:
            return await self._loop.run_in_executor(self._executor, self.handler, event, ctx)
        finally:
            elapsed = time.monotonic() - started
            if elapsed > ctx.timeout_seconds:
                log.warning("%s took %.1f s, over API Gateway's 29 s integration timeout", route_key, elapsed)

    # ------------------------------------------------------------------ WebSocket side

    async def _on_connect(self, ws: ServerConnection, request: Request) -> Response | None:
        remote = ws.remote_address
        headers = {k: v for k, v in request.headers.raw_items()}
        conn = LiveConnection(
            connection_id=new_connection_id(),
            ws=None,
            source_ip=self._source_ip(remote, request),
            user_agent=request.headers.get("User-Agent", ""),
            connected_at_ms=now_ms(),
            last_active_ms=now_ms(),
        )
        event = self.events.connect_event(conn, request.path, headers)
        try:
            result = await self._invoke(event, "$connect")
        except Exception:
            log.exception("$connect handler failed for %s", conn.connection_id)
            return ws.respond(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_SERVER_ERROR + "\n")
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if not 200 <= status < 300:
            body = result.get("body") if isinstance(result, dict) else None
            return ws.respond(status, (body or HTTPStatus(status).phrase) + "\n")
        self._pending[ws] = conn
        return None

    def _source_ip(self, remote: Any, request: Request) -> str:
        """The peer's address; in test mode the test's header when it sends one (an empty
        header stands for an event without `sourceIp`, which the handler refuses)."""
        if self.trust_source_header and SOURCE_HEADER in request.headers:
            return request.headers[SOURCE_HEADER]
        return str(remote[0]) if remote else "127.0.0.1"

    async def _on_open(self, ws: ServerConnection) -> None:
        conn = self._pending.pop(ws)
        conn.ws = ws
        with self._lock:
            self._live[conn.connection_id] = conn
        try:
            async for frame in ws:
                conn.last_active_ms = now_ms()
                task = asyncio.create_task(self._on_frame(conn, frame))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._live.pop(conn.connection_id, None)
            code = ws.close_code if ws.close_code is not None else 1006
            reason = ws.close_reason or ""
            try:
                await self._invoke(self.events.disconnect_event(conn, code, reason), "$disconnect")
            except Exception:
                log.exception("$disconnect handler failed for %s", conn.connection_id)

    async def _on_frame(self, conn: LiveConnection, frame: str | bytes) -> None:
        assert conn.ws is not None
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
        if isinstance(frame, bytes) or size > self.platform.limits.message_max_bytes:
            try:
                parse_client_message(frame, self.platform)
            except ContractError as exc:
                await self._send(conn, exc.to_message().wire_json())
            return
        route_key = self.route_key_for(frame)
        try:
            result = await self._invoke(self.events.message_event(conn, route_key, frame), route_key)
        except Exception:
            log.exception("handler failed on route %s for %s", route_key, conn.connection_id)
            await self._send(
                conn,
                json.dumps(
                    {"message": INTERNAL_SERVER_ERROR, "connectionId": conn.connection_id, "requestId": ""}
                ),
            )
            return
        if self.two_way_routes and isinstance(result, dict) and result.get("body"):
            await self._send(conn, str(result["body"]))

    async def _send(self, conn: LiveConnection, text: str | bytes) -> None:
        assert conn.ws is not None
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(text)

    # ------------------------------------------------------------------ @connections side

    def post_to_connection(self, connection_id: str, data: bytes, timeout: float = 10.0) -> bool:
        """Deliver `data` to the client (text frame if UTF-8). False if the connection is gone."""
        with self._lock:
            conn = self._live.get(connection_id)
        if conn is None or conn.ws is None or self._loop is None:
            return False
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        future = asyncio.run_coroutine_threadsafe(conn.ws.send(payload), self._loop)
        try:
            future.result(timeout=timeout)
        except ConnectionClosed:
            return False
        return True

    def connection_info(self, connection_id: str) -> dict[str, Any] | None:
        with self._lock:
            conn = self._live.get(connection_id)
        if conn is None:
            return None

        def iso(ms: float) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")

        return {
            "connectedAt": iso(conn.connected_at_ms),
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "lastActiveAt": iso(conn.last_active_ms),
        }

    def delete_connection(self, connection_id: str) -> bool:
        with self._lock:
            conn = self._live.get(connection_id)
        if conn is None or conn.ws is None or self._loop is None:
            return False
        asyncio.run_coroutine_threadsafe(conn.ws.close(), self._loop).result(timeout=10)
        return True

    def live_connection_ids(self) -> list[str]:
        with self._lock:
            return list(self._live)


class ConnectionsApi(BaseHTTPRequestHandler):
    """API Gateway's @connections management API (POST, GET, DELETE a connection) over `gateway`,
    which `_connections_handler` binds in a subclass for each gateway."""

    protocol_version = "HTTP/1.1"
    server_version = "synapscribe-local-connections"
    gateway: Gateway  # set by _connections_handler

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("@connections: " + format, *args)

    def _connection_id(self) -> str | None:
        path = urlsplit(self.path).path
        for prefix in (f"/{self.gateway.stage}/@connections/", "/@connections/"):
            if path.startswith(prefix):
                cid = unquote(path[len(prefix) :])
                return cid or None
        return None

    def _reply(self, status: int, body: dict[str, Any] | None = None, error_type: str | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)

    def _gone(self) -> None:
        self._reply(410, {"message": None}, "GoneException")

    def do_POST(self) -> None:
        limit = self.gateway.platform.limits.message_max_bytes
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        cid = self._connection_id()
        if cid is None:
            self._reply(404, {"message": "Not Found"}, "NotFoundException")
        elif length > limit:
            self._reply(413, {"message": f"payload over {limit} bytes"}, "PayloadTooLargeException")
        elif self.gateway.post_to_connection(cid, data):
            self._reply(200)
        else:
            self._gone()

    def do_GET(self) -> None:
        cid = self._connection_id()
        info = self.gateway.connection_info(cid) if cid else None
        if info is None:
            self._gone()
        else:
            self._reply(200, info)

    def do_DELETE(self) -> None:
        cid = self._connection_id()
        if cid is not None and self.gateway.delete_connection(cid):
            self._reply(204)
        else:
            self._gone()


def _connections_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Bound(ConnectionsApi):
        pass

    Bound.gateway = gateway
    return Bound
