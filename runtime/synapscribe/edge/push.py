"""Sending server messages to a connection from a handler: never fails the handler."""

from __future__ import annotations

import logging
from typing import Any

from synapscribe.connections import ConnectionGone
from synapscribe.contract import ServerModel
from synapscribe.edge.config import EdgeDeps

log = logging.getLogger(__name__)


def _kind(message: ServerModel) -> str:
    return str(getattr(message, "type", type(message).__name__))


def connections_endpoint(deps: EdgeDeps, request_context: dict[str, Any] | None = None) -> str | None:
    """SYNAPSCRIBE_CONNECTIONS_ENDPOINT, else https://{domainName}/{stage} from the event."""
    if deps.settings.connections_endpoint:
        return deps.settings.connections_endpoint
    rc = request_context or {}
    domain, stage = rc.get("domainName"), rc.get("stage")
    if isinstance(domain, str) and domain and isinstance(stage, str) and stage:
        return f"https://{domain}/{stage}"
    return None


def push(
    deps: EdgeDeps, connection_id: str, message: ServerModel, request_context: dict[str, Any] | None = None
) -> bool:
    """Post one message; False when it could not be delivered (gone, no endpoint, API error)."""
    endpoint = connections_endpoint(deps, request_context)
    if endpoint is None:
        log.error(
            "no @connections endpoint: set SYNAPSCRIBE_CONNECTIONS_ENDPOINT; %s not sent", _kind(message)
        )
        return False
    try:
        deps.pusher(endpoint).post(connection_id, message)
    except ConnectionGone:
        log.info("connection %s is gone; %s dropped", connection_id, _kind(message))
        return False
    except Exception:
        log.exception("posting %s to connection %s failed", _kind(message), connection_id)
        return False
    return True
