"""API Gateway-shaped Lambda events of a WebSocket API (`$connect`, a message, `$disconnect`), as
the local gateway hands them to the handler, and the connection they are about."""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass
class LiveConnection:
    connection_id: str
    ws: ServerConnection | None
    source_ip: str
    user_agent: str
    connected_at_ms: int
    last_active_ms: int


class WebSocketEvents:
    """The events of one stage of one API, as API Gateway builds them (a context per event, with
    fresh request and message ids)."""

    def __init__(self, stage: str, domain_name: str, api_id: str) -> None:
        self.stage = stage
        self.domain_name = domain_name
        self.api_id = api_id

    def _context(self, conn: LiveConnection, event_type: str, route_key: str) -> dict[str, Any]:
        now = now_ms()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": request_time(now),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": conn.connected_at_ms,
            "requestTimeEpoch": now,
            "identity": {
                **({"sourceIp": conn.source_ip} if conn.source_ip else {}),
                "userAgent": conn.user_agent,
            },
            "requestId": uuid.uuid4().hex[:16],
            "domainName": self.domain_name,
            "connectionId": conn.connection_id,
            "apiId": self.api_id,
        }

    def connect_event(self, conn: LiveConnection, path: str, headers: dict[str, str]) -> dict[str, Any]:
        query = parse_qs(urlsplit(path).query, keep_blank_values=True)
        return {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "requestContext": self._context(conn, "CONNECT", "$connect"),
            "isBase64Encoded": False,
        }

    def message_event(self, conn: LiveConnection, route_key: str, body: str) -> dict[str, Any]:
        ctx = self._context(conn, "MESSAGE", route_key)
        ctx["messageId"] = base64.urlsafe_b64encode(os.urandom(11)).decode()
        return {"requestContext": ctx, "body": body, "isBase64Encoded": False}

    def disconnect_event(self, conn: LiveConnection, code: int, reason: str) -> dict[str, Any]:
        ctx = self._context(conn, "DISCONNECT", "$disconnect")
        ctx["disconnectStatusCode"] = code
        ctx["disconnectReason"] = reason
        return {
            "headers": {"Host": self.domain_name, "x-api-key": "", "x-restapi": ""},
            "multiValueHeaders": {},
            "requestContext": ctx,
            "isBase64Encoded": False,
        }
