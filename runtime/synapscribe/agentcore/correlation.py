"""One correlation id per question, in every log line written while that question runs.

The edge may hand one over (QueryJob.correlationId); otherwise the question's requestId is used.
`bound(cid)` sets it for the code that runs inside, including tasks created there (asyncio copies
the context into each new task), so the transcription and TTS tasks of a question carry it too.
`CorrelationFilter` puts it on every log record as `correlation_id` ("-" outside a question).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

NO_CORRELATION = "-"


@dataclass
class QuestionScope:
    correlation_id: str
    #: seconds this question's requests waited for a model slot (AgentCore's admission queue)
    queue_wait_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


_current: ContextVar[QuestionScope | None] = ContextVar("synapscribe_question", default=None)


def current() -> QuestionScope | None:
    return _current.get()


def correlation_id() -> str:
    scope = _current.get()
    return scope.correlation_id if scope is not None else NO_CORRELATION


@contextlib.contextmanager
def bound(cid: str) -> Iterator[QuestionScope]:
    scope = QuestionScope(cid)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def add_queue_wait(seconds: float) -> None:
    """Called by admission after each wait for a slot; a no-op outside a question."""
    scope = _current.get()
    if scope is not None:
        scope.queue_wait_seconds += seconds


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id()
        return True


def install(handler_owner: logging.Logger | None = None) -> None:
    """Add the filter to every handler of the root logger (where basicConfig put its handler)."""
    for handler in (handler_owner or logging.getLogger()).handlers:
        if not any(isinstance(f, CorrelationFilter) for f in handler.filters):
            handler.addFilter(CorrelationFilter())
