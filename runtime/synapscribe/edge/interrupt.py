"""The contract's `cancel`: the edge forwards it to AgentCore, which stops the answer and sends
the query's one final message (an `answer` with `stopped`). The edge itself answers nothing
unless the session is not the caller's, or the question is still parked for a warming host
(edge/warming.py): then it never reaches AgentCore, and the edge sends its stopped final. If
AgentCore cannot be reached the query ends as it would have (its answer, or the sweeper's error
past its deadline)."""

from __future__ import annotations

import json
import logging
import time

from synapscribe import final_claim
from synapscribe.contract import Answer, Cancel, ContractError, ErrorCode, Timings
from synapscribe.edge import warming
from synapscribe.edge.affinity import post_routed
from synapscribe.edge.agentcore_client import AgentCoreError
from synapscribe.edge.config import EdgeDeps
from synapscribe.store import WARMING_ATTRIBUTE

log = logging.getLogger(__name__)


def cancel_query(msg: Cancel, owner: str, connection_id: str, deps: EdgeDeps) -> Answer | None:
    session = deps.store.get_session(msg.sessionId, owner)
    if session is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"session {msg.sessionId!r} not found", msg.requestId)
    stopped = _stop_parked(msg, owner, connection_id, deps)
    if stopped is not None:
        return stopped
    try:
        # To the host its query went to: the lecture's host by the same rendezvous (edge/affinity.py).
        post_routed(
            deps, session["lectureId"], "/v1/queries/cancel", {"owner": owner, "requestId": msg.requestId}
        )
    except AgentCoreError as exc:
        log.warning("cancel of query %s not delivered: %s", msg.requestId, exc)
    return None


def _stop_parked(msg: Cancel, owner: str, connection_id: str, deps: EdgeDeps) -> Answer | None:
    """The query, if it is parked on this connection waiting for a host: off the parked set (one
    conditional write; the sweeper's hand-off takes the same record, so only one of them has it),
    then its final claimed by the edge, so that a hand-off the sweeper began from an older read
    is dropped by AgentCore's own claim. None when it is not parked (any more): AgentCore has it."""
    item = deps.store.get_connection(connection_id) or {}
    for key, record in dict(item.get(WARMING_ATTRIBUTE) or {}).items():
        job = json.loads(record["job"])
        if final_claim.request_id_of(key) != msg.requestId or job.get("sessionId") != msg.sessionId:
            continue
        if not warming.take(deps.store, connection_id, key):
            continue  # the sweeper handed it over meanwhile
        if not final_claim.claim(deps.store, connection_id, key, "edge"):
            continue  # AgentCore took it already: the forwarded cancel stops it
        deps.quotas.finish_job(owner, key)
        log.info("query %s: stopped while parked for a warming host; not handed over", key)
        waited_ms = max(0.0, time.time() * 1000 - float(job.get("receivedAtMs", 0)))
        return Answer(
            requestId=msg.requestId, text="", audio=[], stopped=True, timings=Timings(totalMs=waited_ms)
        )
    return None
