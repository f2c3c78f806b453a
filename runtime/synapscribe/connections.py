"""Pushing server messages to a client's WebSocket connection (API Gateway's @connections API).

Deployed, the endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage}; the
local stack serves the same `POST /@connections/{id}` path on loopback.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from synapscribe.contract import ServerModel

log = logging.getLogger(__name__)


class ConnectionGone(Exception):
    """The client disconnected; stop sending to it."""


class ConnectionPusher:
    def __init__(self, endpoint_url: str, client: Any | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._client = client or boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}),
        )

    def post(self, connection_id: str, message: ServerModel) -> None:
        """Send one message; raises ConnectionGone when the connection no longer exists."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=message.wire_json().encode())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise ConnectionGone(connection_id) from None
            raise
