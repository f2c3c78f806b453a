"""What the model is asked for one question: the session and its lecture, the answering request
before trimming (`Prompt`; the messages themselves are written by prompts.py), and the budget
that fits it into the context (`fit_budget`)."""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synapscribe import planner
from synapscribe.agentcore import prompts
from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.question import QuestionAudio
from synapscribe.agentcore.vllm_client import UpstreamError
from synapscribe.contract import ContractError, ErrorCode
from synapscribe.platform import PlatformConfig

log = logging.getLogger(__name__)


@dataclass
class Prompt:
    """The answering request before trimming: a fixed prefix (system prompt and lecture, never
    trimmed), the session's earlier turns (the oldest dropped first when they do not fit), and
    the question."""

    platform: PlatformConfig
    lecture_message: dict[str, Any]
    lecture_tokens: int | None  # exact, when the model counted the lecture's transcript
    question: dict[str, Any]
    turns: list[dict[str, Any]]
    #: the lecture's audio items (audio mode), which may go by reference (media_refs.py)
    items: Sequence[prompts.LectureAudioItem] = ()
    fixed: list[dict[str, Any]] = field(init=False)
    turn_messages: list[list[dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self.fixed = prompts.lecture_messages(self.lecture_message)
        self.turn_messages = [prompts.turn_messages(t) for t in self.turns]

    def _exact(self, m: dict[str, Any]) -> bool:
        return m is self.lecture_message and self.lecture_tokens is not None

    def fit(self, text_tokens: Callable[[str], int]) -> planner.RequestBudget:
        """The budget with texts counted by `text_tokens`."""
        p = self.platform
        fixed_tokens = planner.GENERATION_PROMPT_TOKENS + sum(
            self.lecture_tokens
            if self._exact(m) and self.lecture_tokens is not None
            else planner.estimate_message_tokens(m, p, text_tokens)
            for m in [*self.fixed, self.question]
        )
        turn_tokens = [
            sum(planner.estimate_message_tokens(m, p, text_tokens) for m in ms) for ms in self.turn_messages
        ]
        return planner.budget_request(fixed_tokens, turn_tokens, p)

    def counted(self) -> list[dict[str, Any]]:
        """The messages whose texts an exact count must cover (not the lecture it already has)."""
        own = [m for m in [*self.fixed, self.question] if not self._exact(m)]
        return own + [m for ms in self.turn_messages for m in ms]

    def messages(self, budget: planner.RequestBudget, by_reference: bool = False) -> list[dict[str, Any]]:
        """The request's messages; `by_reference` sends the lecture's items as uuids alone."""
        kept = self.turns[len(self.turns) - budget.kept_turns :] if budget.kept_turns else []
        fixed = self.fixed
        if by_reference and self.items:
            fixed = prompts.lecture_messages(prompts.lecture_audio_message(self.items, by_reference=True))
        return [*fixed, *prompts.history_messages(kept), self.question]


async def session_and_lecture(
    deps: AgentCoreDeps, job: QueryJob, spans: Spans
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The query's session and its lecture, which must be ready to answer from."""
    store = deps.aws.store
    session = await deps.aws.call(store.get_session, job.sessionId, job.owner, spans=spans, what="dynamodb")
    if session is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"session {job.sessionId} not found", job.requestId)
    lecture = await deps.aws.call(
        store.get_lecture, session["lectureId"], job.owner, spans=spans, what="dynamodb"
    )
    if lecture is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"session {job.sessionId} not found", job.requestId)
    if lecture.get("status") != "ready":
        reason = f": {lecture['reason']}" if lecture.get("reason") else ""
        raise ContractError(
            ErrorCode.LECTURE_NOT_READY,
            f"lecture {lecture['lectureId']} of this session is {lecture.get('status')}{reason}",
            job.requestId,
        )
    return session, lecture


async def build_prompt(
    deps: AgentCoreDeps,
    job: QueryJob,
    spans: Spans,
    session: dict[str, Any],
    lecture: dict[str, Any],
    question_audio: QuestionAudio | None,
) -> Prompt:
    lecture_message, lecture_tokens, items = await _lecture_message(deps, session, lecture, spans)
    if question_audio is not None:
        b64 = base64.b64encode(question_audio.data).decode("ascii")
        question = prompts.question_message(audio=(b64, question_audio.fmt, question_audio.seconds))
    else:
        question = prompts.question_message(text=job.text)
    return Prompt(
        platform=deps.platform,
        lecture_message=lecture_message,
        lecture_tokens=lecture_tokens,
        question=question,
        turns=list(session.get("history") or []),
        items=items,
    )


async def _lecture_message(
    deps: AgentCoreDeps, session: dict[str, Any], lecture: dict[str, Any], spans: Spans
) -> tuple[dict[str, Any], int | None, list[prompts.LectureAudioItem]]:
    """The lecture as a chat message, its exact token count when the model counted it, and
    its audio items (audio mode)."""
    if session.get("contextMode") == "transcript":
        transcript = await deps.lectures.transcript(lecture, spans)
        message = prompts.lecture_transcript_message(transcript.segments)
        if transcript.tokens is None:
            return message, None, []
        exact = transcript.tokens + planner.MESSAGE_OVERHEAD_TOKENS + planner.estimate_text_tokens("user")
        return message, exact, []
    items = await deps.lectures.audio_items(lecture, spans)
    return prompts.lecture_audio_message(items), None, items


async def fit_budget(
    deps: AgentCoreDeps,
    fit: Callable[[Callable[[str], int]], planner.RequestBudget],
    messages: list[dict[str, Any]],
    job: QueryJob,
    spans: Spans,
    stats: dict[str, Any],
) -> planner.RequestBudget:
    """The request's budget: by the byte bound when everything fits by it; otherwise with the
    texts of `messages` counted exactly by the model server's tokenizer, then trimmed."""
    bound: planner.RequestBudget | None = None
    with contextlib.suppress(planner.ContextOverflowError):
        bound = fit(planner.estimate_text_tokens)
    full_answer = deps.platform.context.answer_max_tokens
    if bound is not None and bound.dropped_turns == 0 and bound.max_tokens >= full_answer:
        return bound
    texts = [t for m in messages for t in planner.message_texts(m)]
    t = time.perf_counter()
    try:
        exact = await deps.text_counter().counts(texts)
    except UpstreamError as exc:
        if bound is None:
            raise
        log.warning("request %s: exact token count failed (%s); trimming by the bound", job.requestId, exc)
        return bound
    finally:
        spans.add(t, time.perf_counter(), "vllm.tokenize")
    stats["exactCount"] = True
    return fit(exact.__getitem__)
