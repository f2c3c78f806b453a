"""The contract's `cancel`: the edge forwards it to AgentCore, which stops the answer and sends
the query's one final message (an `answer` with `stopped`). The edge itself answers nothing
unless the session is not the caller's; if AgentCore cannot be reached the query ends as it
would have (its answer, or the sweeper's error past its deadline)."""

from __future__ import annotations

import logging

from synapscribe.contract import Cancel, ContractError, ErrorCode
from synapscribe.edge.affinity import post_routed
from synapscribe.edge.agentcore_client import AgentCoreError
from synapscribe.edge.config import EdgeDeps

log = logging.getLogger(__name__)


def cancel_query(msg: Cancel, owner: str, connection_id: str, d: EdgeDeps) -> None:
    session = d.store.get_session(msg.sessionId, owner)
    if session is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"session {msg.sessionId!r} not found", msg.requestId)
    try:
        # To the host its query went to: the lecture's host by the same rendezvous (edge/affinity.py).
        post_routed(
            d, session["lectureId"], "/v1/queries/cancel", {"owner": owner, "requestId": msg.requestId}
        )
    except AgentCoreError as exc:
        log.warning("cancel of query %s not delivered: %s", msg.requestId, exc)
