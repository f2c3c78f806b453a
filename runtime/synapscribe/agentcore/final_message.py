"""The query's one final message under the final-claim protocol (synapscribe/final_claim.py,
described in docs/interfaces.md, "One final message per question"): claimed with our deadline
before anything is pushed (`claim_final`), settled just before it is sent (`send_final`)."""

from __future__ import annotations

import logging

from synapscribe import final_claim
from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.outbox import Outbox
from synapscribe.contract import ServerModel

log = logging.getLogger(__name__)


class FinalClaimedElsewhere(Exception):
    """The edge already answered this query (its hand-off timed out): send nothing for it."""


async def claim_final(deps: AgentCoreDeps, job: QueryJob, spans: Spans) -> bool:
    """final_claim.claim with our deadline, before anything is pushed.

    True when the claim (and its deadline) is recorded; False when the claim call failed.
    Raises FinalClaimedElsewhere when the claim was lost (the edge's hand-off timed out and
    it answered the client itself, or the connection is gone). A failing claim is logged and
    the query answered: a possible second final is better than none.
    """
    store = deps.aws.store
    key = final_claim.key(job.requestId, job.receivedAtMs)
    due = final_claim.deadline(store, deps.platform, job.owner, job.requestId)
    try:
        claimed = await deps.aws.call(
            final_claim.claim,
            store,
            job.connectionId,
            key,
            "agentcore",
            due,
            spans=spans,
            what="dynamodb",
        )
    except Exception:
        log.exception("request %s: the final-message claim failed; answering anyway", job.requestId)
        return False
    if not claimed:
        raise FinalClaimedElsewhere(job.requestId)
    return True


async def send_final(
    deps: AgentCoreDeps, job: QueryJob, spans: Spans, outbox: Outbox, final: ServerModel, recorded: bool
) -> bool:
    """Send the final unless the sweeper already sent one for us (our deadline ran out):
    then end without it, so the client gets exactly one. False when it was not sent."""
    if recorded and not await _settle_final(deps, job, spans):
        log.warning(
            "request %s: past its deadline, the sweeper answered it; our final dropped", job.requestId
        )
        outbox.abandon()
        await outbox.closed()
        return False
    outbox.finish_with(final)
    await outbox.closed()
    return True


async def _settle_final(deps: AgentCoreDeps, job: QueryJob, spans: Spans) -> bool:
    """final_claim.settle just before the final is sent. False when the sweeper already took
    the final over (we were past the deadline): ours must not be sent. Called only when
    claim_final recorded a deadline. A failing settle call is logged and the final sent: a
    possible second final is better than none."""
    key = final_claim.key(job.requestId, job.receivedAtMs)
    store = deps.aws.store
    try:
        return bool(
            await deps.aws.call(
                final_claim.settle, store, job.connectionId, key, spans=spans, what="dynamodb"
            )
        )
    except Exception:
        log.exception("request %s: settling the final-message claim failed; sending anyway", job.requestId)
        return True
