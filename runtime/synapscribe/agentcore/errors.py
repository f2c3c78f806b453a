"""The `error` a failed query ends with (`error_final`), by what failed."""

from __future__ import annotations

import logging
import uuid

from synapscribe import planner
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.vllm_client import UpstreamError, UpstreamTooLargeError
from synapscribe.contract import ContractError, ErrorCode, ErrorMessage
from synapscribe.platform import PlatformConfig

log = logging.getLogger(__name__)


def internal_error(request_id: str | None, what: str) -> ErrorMessage:
    error_id = uuid.uuid4().hex[:12]
    log.exception("internal error %s while %s (request %s)", error_id, what, request_id)
    return ErrorMessage(
        code=ErrorCode.INTERNAL,
        message=f"something went wrong on our side; quote error id {error_id} when reporting it",
        requestId=request_id,
    )


#: What the client is told when the model server refuses a request as too large, by kind.
TOO_LARGE_REASONS = {
    "context": "the lecture, the conversation and the question do not fit the model's context",
    "encoder_cache": "an audio item (the question's or a lecture part) is longer than the model takes in one piece",
    "items": "the request has more audio parts than the model takes at once",
}


def too_large_error(request_id: str | None, exc: UpstreamTooLargeError) -> ErrorMessage:
    """The model server refused the request as too large: `too_large`, saying what was too large.

    AgentCore budgets every request to the context it is configured with, so this means the
    server was started with less (context, encoder cache) than AgentCore plans for: logged as such.
    """
    log.error(
        "request %s: the model server refused it as too large (%s): %s; is vLLM started with the "
        "platform's max_model_len and max_num_batched_tokens?",
        request_id,
        exc.kind,
        exc,
    )
    reason = TOO_LARGE_REASONS.get(exc.kind, "the request is too large for the model")
    return ErrorMessage(
        code=ErrorCode.TOO_LARGE, message=f"{reason}; the model server said: {exc}", requestId=request_id
    )


def error_final(platform: PlatformConfig, job: QueryJob, exc: Exception) -> ErrorMessage:
    """The `error` a failed query ends with; called while `exc` is handled (for the log)."""
    rid = job.requestId
    if isinstance(exc, ContractError):
        # Raised below the query (e.g. by the lecture's preparation) without its request id.
        return exc.to_message().model_copy(update={"requestId": exc.request_id or rid})
    if isinstance(exc, adm.BusyError):
        return ErrorMessage(
            code=ErrorCode.BUSY, message=f"the model is at capacity ({exc}); retry later", requestId=rid
        )
    if isinstance(exc, UpstreamError):
        return ErrorMessage(code=ErrorCode.UPSTREAM_UNAVAILABLE, message=str(exc), requestId=rid)
    if isinstance(exc, planner.ContextOverflowError):
        log.info("request %s: does not fit the context: %s", rid, exc)
        return ErrorMessage(
            code=ErrorCode.TOO_LARGE,
            message=f"the question does not fit beside this lecture: {exc} (a question may be about "
            f"{platform.context.question_tokens} tokens); shorten the question",
            requestId=rid,
        )
    if isinstance(exc, UpstreamTooLargeError):
        return too_large_error(rid, exc)
    return internal_error(rid, "answering")
