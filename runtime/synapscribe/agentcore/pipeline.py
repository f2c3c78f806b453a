"""The query pipeline: question in, streamed text and spoken sentences out, in contract order.

A voice question's audio goes straight into the answering request while a second request
transcribes it beside it; answer text and speech go out as soon as they exist, and the
`transcript` whenever it is ready (before, between or after them, always before the `answer`).
Complete sentences go to TTS at once (concurrently, announced in order). Nothing about a session
lives in memory: history is read from and written to DynamoDB on every query.

The parts, each in its module: the question's audio and its transcription (question.py), the
session, lecture and prompt fitted to the context (prompt.py), the answer's model slot and stream
(answer.py), its speech (speech.py), the messages to the client (outbox.py), the one final message
(final_message.py) and the `error` a failure ends with (errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from synapscribe import final_claim
from synapscribe.agentcore import citations
from synapscribe.agentcore.answer import AnswerSlot, AnswerStream
from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.errors import error_final
from synapscribe.agentcore.final_message import FinalClaimedElsewhere, claim_final, send_final
from synapscribe.agentcore.interrupts import Stopped, until_stopped
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.outbox import Outbox
from synapscribe.agentcore.prompt import build_prompt, fit_budget, session_and_lecture
from synapscribe.agentcore.query import Query, first_audio, log_figures
from synapscribe.agentcore.question import QuestionTranscription, read_question_audio
from synapscribe.agentcore.speech import Speech
from synapscribe.contract import Answer, Citation, ErrorCode, ErrorMessage, ServerModel, Timings
from synapscribe.quotas import OwnerQuotas

log = logging.getLogger(__name__)


class QueryPipeline:
    """One query from the edge's hand-off to its final message: the final claimed, the answer
    (or what was sent of it when stopped, or the error) sent once, the owner's job slot given
    back, and the query's figures logged. The answer's parts live in their own modules."""

    def __init__(self, deps: AgentCoreDeps) -> None:
        self.deps = deps

    async def run(self, job: QueryJob, accepted_at: float | None = None) -> None:
        try:
            await self._run(job, accepted_at)
        finally:
            await self._finish_job(job)

    async def _finish_job(self, job: QueryJob) -> None:
        """Give the owner's job slot back (quotas.jobs_in_flight); a failure only logs, as the
        slot ends with its lease (quotas.job_lease_seconds) anyway."""
        quotas = OwnerQuotas(self.deps.aws.store, self.deps.platform)
        key = final_claim.key(job.requestId, job.receivedAtMs)
        try:
            await asyncio.shield(self.deps.aws.call(quotas.finish_job, job.owner, key))
        except (Exception, asyncio.CancelledError):
            log.exception(
                "request %s: its job slot was not given back (it ends with its lease)", job.requestId
            )

    async def _run(self, job: QueryJob, accepted_at: float | None = None) -> None:
        t0 = accepted_at if accepted_at is not None else time.perf_counter()
        cpu0 = time.process_time()
        spans = Spans()
        voice_in = job.text is None
        outbox = Outbox(self.deps.aws, job.connectionId, spans)
        stats: dict[str, Any] = {"requestId": job.requestId, "kind": "voice" if voice_in else "text"}
        query = Query(job, spans, outbox, stats)
        recorded = False
        try:
            recorded = await claim_final(self.deps, job, spans)
            final = await self._answer_unless_stopped(query)
        except FinalClaimedElsewhere:
            log.info(
                "request %s: the edge already answered it (or the client is gone); dropped", job.requestId
            )
            outbox.abandon()
            await outbox.closed()
            return
        except asyncio.CancelledError:
            # Shutdown after the drain timeout: the client still gets its one final message.
            busy = ErrorMessage(
                code=ErrorCode.BUSY,
                message="the server stopped before this answer was complete; ask again",
                requestId=job.requestId,
            )
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(
                    asyncio.shield(send_final(self.deps, job, spans, outbox, busy, recorded)), 5
                )
            raise
        except Exception as exc:
            final = error_final(self.deps.platform, job, exc)
        finally:
            for task in query.pending:
                task.cancel()
        if isinstance(final, ErrorMessage):
            stats["error"] = final.code.value
        if not await send_final(self.deps, job, spans, outbox, final, recorded):
            return
        log_figures(stats, spans, t0, cpu0)

    async def _answer_unless_stopped(self, q: Query) -> ServerModel:
        """The answer, or what was sent of it as an `answer` with `stopped` when the student
        stopped it (the contract's `cancel`, interrupts.py): not kept in the history."""
        job = q.job
        answering = self.deps.interrupts.watch(job.owner, job.requestId)
        try:
            return await until_stopped(self._answer(q), answering.stop)
        except Stopped:
            # The sentences still being spoken and the transcription are cancelled by _run.
            q.stats["stopped"] = True
            log.info("request %s: stopped by the student", job.requestId)
            return Answer(
                requestId=q.request_id,
                text="".join(q.outbox.streamed).strip(),
                audio=list(q.outbox.spoken),
                stopped=True,
                timings=Timings(totalMs=q.since_receipt()),
            )
        finally:
            self.deps.interrupts.forget(job.owner, job.requestId)

    async def _answer(self, q: Query) -> ServerModel:
        slot = AnswerSlot(self.deps, q)
        try:
            return await self._answer_in(q, slot)
        finally:
            slot.release()

    async def _answer_in(self, q: Query, slot: AnswerSlot) -> ServerModel:
        started = time.perf_counter()
        job = q.job
        session, lecture = await session_and_lecture(self.deps, job, q.spans)
        question_audio = await read_question_audio(self.deps, job, q.spans) if job.text is None else None
        prompt = await build_prompt(self.deps, job, q.spans, session, lecture, question_audio)
        budget = await fit_budget(self.deps, prompt.fit, prompt.counted(), job, q.spans, q.stats)
        q.stats.update(promptTokens=budget.prompt_tokens, droppedTurns=budget.dropped_turns)

        # The transcription runs beside the answer; the final `answer` waits for it (its text
        # is the question kept in history for follow-ups).
        transcription = (
            QuestionTranscription(self.deps, q, question_audio) if question_audio is not None else None
        )
        speech = Speech(self.deps, q) if job.voice else None
        stream = AnswerStream(self.deps, q, speech)
        await slot.wait()
        answer_text = await stream.run(prompt, budget, started)
        slot.release()  # the transcription, speech and history below need no answer slot
        if speech is not None:
            speech.close()
        transcript_text = await transcription.text() if transcription is not None else None
        if speech is not None:
            await speech.finished()

        question_text = job.text if job.text is not None else (transcript_text or "")
        cited = citations.parse(answer_text, lecture.get("durationSeconds"))
        await self._record_turn(job, q.spans, question_text, answer_text, cited)
        answer = await self._answered(q, stream, speech, transcription)
        return answer.model_copy(update={"citations": cited})

    async def _record_turn(
        self, job: QueryJob, spans: Spans, question: str, answer: str, cited: list[Citation]
    ) -> None:
        """Keep the turn in the session's history, for follow-up questions and for `getSession`
        (with its citations, so a reopened conversation plays the lecture as the live one did)."""
        turn = {
            "requestId": job.requestId,
            "question": question,
            "answer": answer,
            "voice": job.text is None,
            "at": int(time.time()),
            "citations": citations.stored(cited),
        }
        await self.deps.aws.call(
            self.deps.aws.store.append_turn, job.sessionId, turn, spans=spans, what="dynamodb"
        )

    async def _answered(
        self,
        q: Query,
        stream: AnswerStream,
        speech: Speech | None,
        transcription: QuestionTranscription | None,
    ) -> Answer:
        """The final `answer`, once everything streamed before it has been pushed (its timings
        include the first audio's push)."""
        urls = speech.urls if speech is not None else []
        if speech is not None:
            q.stats.update(sentences=speech.count, spoken=len(urls), ttsFailed=speech.failed)
        else:
            q.stats.update(sentences=0, spoken=0, ttsFailed=False)
        await q.outbox.drained()
        timings = Timings(
            asrMs=transcription.asr_ms if transcription is not None else None,
            firstTokenMs=stream.first_token_ms,
            firstAudioMs=first_audio(q.outbox, q.job, urls),
            totalMs=q.since_receipt(),
        )
        q.stats.update(timings.model_dump())
        return Answer(
            requestId=q.request_id,
            text=stream.text,
            audio=urls,
            ttsEngine=speech.engine() if speech is not None else None,
            timings=timings,
        )
