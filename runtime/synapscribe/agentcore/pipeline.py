"""The query pipeline: question in, streamed text and spoken sentences out, in contract order.

A voice question's audio goes straight into the answering request while a second request
transcribes it beside it; answer pieces are held back until the `transcript` message is out.
Complete sentences go to TTS at once (concurrently, announced in order). Nothing about a session
lives in memory: history is read from and written to DynamoDB on every query.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synapscribe import keys, planner
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import prompts
from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.lectures import LectureContexts, LectureUnavailableError
from synapscribe.agentcore.media import DIRECT_FORMATS, MediaError, duration_seconds, sniff_format, to_mp3
from synapscribe.agentcore.sentences import SentenceSplitter
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import (
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTooLargeError,
    VllmClient,
)
from synapscribe.contract import (
    Answer,
    AnswerDelta,
    Audio,
    ContractError,
    ErrorCode,
    ErrorMessage,
    ServerModel,
    Timings,
    Transcript,
)
from synapscribe.platform import PlatformConfig
from synapscribe.quotas import OwnerQuotas
from synapscribe.store import final_claim_key

log = logging.getLogger(__name__)
metrics_log = logging.getLogger("synapscribe.agentcore.metrics")

NO_TTS_ENGINE = "none"
#: Answer pieces are pushed at most this often (the rest are joined): each push costs a call to
#: API Gateway (money, and a few ms of boto3 CPU); a tenth of a second still reads as streaming.
DELTA_INTERVAL_SECONDS = 0.1
#: One sentence's TTS failure does not silence the rest of the answer; this many failures in a
#: row (the speech service is down, not slow once) do, so the answer does not wait on it further.
TTS_GIVE_UP_AFTER_FAILURES = 3


@dataclass
class AgentCoreDeps:
    """What AgentCore's routes and pipeline work with: the platform configuration, the clients of
    AWS, the model server and TTS, admission and the lecture contexts, and its background tasks.
    (A "service" is a server process: the TTS service, the AgentCore service.)"""

    platform: PlatformConfig
    aws: AwsIo
    vllm: VllmClient
    tts: TtsClient
    admission: adm.Admission
    lectures: LectureContexts
    voice: str = ""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    counter: planner.TextTokenCounter | None = None  # made from `vllm` when first needed

    def text_counter(self) -> planner.TextTokenCounter:
        if self.counter is None:
            self.counter = planner.TextTokenCounter(self.vllm.count_tokens)
        return self.counter

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


# TEMPORARY: the old name, for branches in flight (issue 13); the lead removes it at merge.
Services = AgentCoreDeps


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


class FinalClaimedElsewhere(Exception):
    """The edge already answered this query (its hand-off timed out): send nothing for it."""


class Outbox:
    """Messages to one connection, pushed in order by one task; held until the transcript is out.

    Answer deltas are paced (at most one push per DELTA_INTERVAL_SECONDS; pieces that arrive in
    between, or pile up behind a slow push, are joined into one message). Anything else in the
    queue flushes the pending delta at once, so speech is never held back by the pacing.
    """

    _END = object()

    def __init__(self, aws: AwsIo, connection_id: str, spans: Spans, hold: bool) -> None:
        self.aws = aws
        self.connection_id = connection_id
        self.spans = spans
        self.hold = hold
        self.held: list[ServerModel] = []
        self.gone = False
        self.first_audio_at: float | None = None  # epoch ms
        self._queue: deque[Any] = deque()
        self._last_delta: float | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._send())

    def _put(self, item: Any) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    def send(self, message: ServerModel) -> None:
        if self.hold and not isinstance(message, Transcript):
            self.held.append(message)
        else:
            self._put(message)

    def release(self, transcript: Transcript) -> None:
        self._put(transcript)
        for message in self.held:
            self._put(message)
        self.held.clear()
        self.hold = False

    def abandon(self) -> None:
        """End without a final message (nothing was sent: the query is not ours to answer)."""
        self.held.clear()
        self._put(self._END)

    def finish_with(self, message: ServerModel) -> None:
        """The last message (answer or error); anything still held is dropped."""
        self.held.clear()
        self.hold = False
        self._put(message)
        self._put(self._END)

    async def closed(self) -> None:
        await self._task

    async def drained(self) -> None:
        """Everything sent so far has been pushed (or the client is gone)."""
        await self._idle.wait()

    def _next(self) -> Any:
        item = self._queue.popleft()
        if not isinstance(item, AnswerDelta):
            return item
        parts = [item.text]
        while self._queue and isinstance(self._queue[0], AnswerDelta):
            parts.append(self._queue.popleft().text)
        return item if len(parts) == 1 else AnswerDelta(requestId=item.requestId, text="".join(parts))

    async def _pace_deltas(self) -> None:
        """Hold a delta until DELTA_INTERVAL after the previous one, unless something else waits."""
        if self._last_delta is None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_delta + DELTA_INTERVAL_SECONDS
        while (now := loop.time()) < due and all(isinstance(m, AnswerDelta) for m in self._queue):
            self._wake.clear()
            try:
                async with asyncio.timeout(due - now):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _send(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if isinstance(self._queue[0], AnswerDelta):
                await self._pace_deltas()
            message = self._next()
            if message is self._END:
                self._idle.set()
                return
            if self.gone:
                continue
            if isinstance(message, AnswerDelta):
                self._last_delta = asyncio.get_running_loop().time()
            if not await self.aws.push(self.connection_id, message, self.spans):
                self.gone = True
                log.info("connection %s is gone; dropping the rest", self.connection_id)
            elif isinstance(message, Audio) and self.first_audio_at is None:
                self.first_audio_at = time.time() * 1000


class QueryPipeline:
    def __init__(self, deps: AgentCoreDeps) -> None:
        self.s = deps

    # ------------------------------------------------------------------ inputs

    async def _question_audio(self, job: QueryJob, spans: Spans) -> tuple[bytes, str, float]:
        p = self.s.platform
        if job.audio is not None:
            try:
                data = base64.b64decode(job.audio, validate=True)
            except (binascii.Error, ValueError):
                raise ContractError(ErrorCode.BAD_REQUEST, "audio: not valid base64", job.requestId) from None
            if len(data) > p.limits.inline_audio_max_bytes:
                raise ContractError(
                    ErrorCode.TOO_LARGE,
                    f"inline audio is {len(data)} bytes decoded; the limit is {p.limits.inline_audio_max_bytes}",
                    job.requestId,
                )
        else:
            parsed = keys.parse_upload_key(job.queryKey or "", p)
            if parsed is None or parsed[0] != "query" or parsed[1] != job.owner:
                raise ContractError(ErrorCode.NOT_FOUND, "queryKey: no such query upload", job.requestId)
            blob = await self.s.aws.get(job.queryKey or "", spans)
            if blob is None:
                raise ContractError(ErrorCode.NOT_FOUND, "queryKey: no such query upload", job.requestId)
            data = blob
        fmt = sniff_format(data)
        if fmt is None:
            raise ContractError(
                ErrorCode.UNSUPPORTED_MEDIA,
                "the question's audio is not in a format we can read",
                job.requestId,
            )
        try:
            if fmt not in DIRECT_FORMATS:
                data, fmt = await to_mp3(data), "mp3"
            seconds = duration_seconds(data, fmt)
        except MediaError as exc:
            raise ContractError(
                ErrorCode.UNSUPPORTED_MEDIA, f"the question's audio: {exc}", job.requestId
            ) from None
        if seconds > p.limits.query_max_seconds:
            raise ContractError(
                ErrorCode.TOO_LARGE,
                f"the question is {seconds:.0f} s long; the limit is {p.limits.query_max_seconds} s",
                job.requestId,
            )
        return data, fmt, seconds

    async def _lecture_message(
        self, session: dict[str, Any], lecture: dict[str, Any], spans: Spans
    ) -> tuple[dict[str, Any], int | None]:
        """The lecture as a chat message, and its exact token count when the model counted it."""
        if session.get("contextMode") == "transcript":
            transcript = await self.s.lectures.transcript(lecture, spans)
            message = prompts.lecture_transcript_message(transcript.segments)
            if transcript.tokens is None:
                return message, None
            exact = transcript.tokens + planner.MESSAGE_OVERHEAD_TOKENS + planner.estimate_text_tokens("user")
            return message, exact
        return prompts.lecture_audio_message(await self.s.lectures.audio_items(lecture, spans)), None

    async def _fit(
        self,
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
        full_answer = self.s.platform.context.answer_max_tokens
        if bound is not None and bound.dropped_turns == 0 and bound.max_tokens >= full_answer:
            return bound
        texts = [t for m in messages for t in planner.message_texts(m)]
        t = time.perf_counter()
        try:
            exact = await self.s.text_counter().counts(texts)
        except UpstreamError as exc:
            if bound is None:
                raise
            log.warning(
                "request %s: exact token count failed (%s); trimming by the bound", job.requestId, exc
            )
            return bound
        finally:
            spans.add(t, time.perf_counter(), "vllm.tokenize")
        stats["exactCount"] = True
        return fit(exact.__getitem__)

    # ------------------------------------------------------------------ the query

    async def run(self, job: QueryJob, accepted_at: float | None = None) -> None:
        try:
            await self._run(job, accepted_at)
        finally:
            await self._finish_job(job)

    async def _finish_job(self, job: QueryJob) -> None:
        """Give the owner's job slot back (quotas.jobs_in_flight); a failure only logs, as the
        slot ends with its lease (quotas.job_lease_seconds) anyway."""
        quotas = OwnerQuotas(self.s.aws.store, self.s.platform)
        key = final_claim_key(job.requestId, job.receivedAtMs)
        try:
            await asyncio.shield(self.s.aws.call(quotas.finish_job, job.owner, key))
        except (Exception, asyncio.CancelledError):
            log.exception(
                "request %s: its job slot was not given back (it ends with its lease)", job.requestId
            )

    async def _run(self, job: QueryJob, accepted_at: float | None = None) -> None:
        t0 = accepted_at if accepted_at is not None else time.perf_counter()
        cpu0 = time.process_time()
        spans = Spans()
        voice_in = job.text is None
        outbox = Outbox(self.s.aws, job.connectionId, spans, hold=voice_in)
        pending: list[asyncio.Task[Any]] = []
        stats: dict[str, Any] = {"requestId": job.requestId, "kind": "voice" if voice_in else "text"}
        recorded = False
        try:
            recorded = await self._claim_final(job, spans)
            final = await self._answer(job, spans, outbox, pending, stats)
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
                    asyncio.shield(self._send_final(job, spans, outbox, busy, recorded)), 5
                )
            raise
        except ContractError as exc:
            # Raised below the query (e.g. by the lecture's preparation) without its request id.
            final = exc.to_message().model_copy(update={"requestId": exc.request_id or job.requestId})
        except adm.BusyError as exc:
            final = ErrorMessage(
                code=ErrorCode.BUSY,
                message=f"the model is at capacity ({exc}); retry later",
                requestId=job.requestId,
            )
        except UpstreamError as exc:
            final = ErrorMessage(
                code=ErrorCode.UPSTREAM_UNAVAILABLE, message=str(exc), requestId=job.requestId
            )
        except planner.ContextOverflowError as exc:
            log.info("request %s: does not fit the context: %s", job.requestId, exc)
            final = ErrorMessage(
                code=ErrorCode.TOO_LARGE,
                message=f"the question does not fit beside this lecture: {exc} (a question may be about "
                f"{self.s.platform.context.question_tokens} tokens); shorten the question",
                requestId=job.requestId,
            )
        except UpstreamTooLargeError as exc:
            final = too_large_error(job.requestId, exc)
        except (UpstreamRejectedError, LectureUnavailableError):
            final = internal_error(job.requestId, "answering")
        except Exception:
            final = internal_error(job.requestId, "answering")
        finally:
            for task in pending:
                task.cancel()
        if isinstance(final, ErrorMessage):
            stats["error"] = final.code.value
        if not await self._send_final(job, spans, outbox, final, recorded):
            return
        end = time.perf_counter()
        total = end - t0
        stats.update(
            event="query",
            agentcoreMs=round(total * 1000, 2),
            # CPU of the whole process (all threads) while the query ran: the query's own CPU
            # cost when it ran alone (the benchmark's sequential queries).
            processCpuMs=round((time.process_time() - cpu0) * 1000, 2),
            ownMs=round((total - spans.covered(t0, end)) * 1000, 3),
            waits={k: round(v * 1000, 1) for k, v in _by_kind(spans).items()},
        )
        metrics_log.info(json.dumps(stats))

    async def _claim_final(self, job: QueryJob, spans: Spans) -> bool:
        """Claim the query's one final message before anything is pushed (store.claim_final).

        True when the claim (and its deadline) is recorded; False when the claim call failed.
        Raises FinalClaimedElsewhere when the edge's hand-off timed out and it answered the
        client itself, or the connection is gone. A failing claim is logged and the query
        answered: a possible second final is better than none.
        """
        key = final_claim_key(job.requestId, job.receivedAtMs)
        # Due within the job slot's lease: past it the sweeper answers `upstream_unavailable`
        # for us (we died mid-answer) and gives the slot back.
        deadline = {
            "until": self.s.aws.store.now() + self.s.platform.quotas.job_lease_seconds,
            "owner": job.owner,
            "requestId": job.requestId,
        }
        try:
            claimed = await self.s.aws.call(
                self.s.aws.store.claim_final,
                job.connectionId,
                key,
                "agentcore",
                deadline,
                spans=spans,
                what="dynamodb",
            )
        except Exception:
            log.exception("request %s: the final-message claim failed; answering anyway", job.requestId)
            return False
        if not claimed:
            raise FinalClaimedElsewhere(job.requestId)
        return True

    async def _send_final(
        self, job: QueryJob, spans: Spans, outbox: Outbox, final: ServerModel, recorded: bool
    ) -> bool:
        """Send the final unless the sweeper already sent one for us (our deadline ran out):
        then end without it, so the client gets exactly one. False when it was not sent."""
        if recorded and not await self._settle_final(job, spans):
            log.warning(
                "request %s: past its deadline, the sweeper answered it; our final dropped", job.requestId
            )
            outbox.abandon()
            await outbox.closed()
            return False
        outbox.finish_with(final)
        await outbox.closed()
        return True

    async def _settle_final(self, job: QueryJob, spans: Spans) -> bool:
        """Clear our deadline just before the final is sent (store.settle_final). False when the
        sweeper already took the final over (we were past the deadline): ours must not be sent.
        Called only when _claim_final recorded a deadline. A failing settle call is logged and
        the final sent: a possible second final is better than none."""
        key = final_claim_key(job.requestId, job.receivedAtMs)
        try:
            return bool(
                await self.s.aws.call(
                    self.s.aws.store.settle_final, job.connectionId, key, spans=spans, what="dynamodb"
                )
            )
        except Exception:
            log.exception(
                "request %s: settling the final-message claim failed; sending anyway", job.requestId
            )
            return True

    async def _answer(
        self,
        job: QueryJob,
        spans: Spans,
        outbox: Outbox,
        pending: list[asyncio.Task[Any]],
        stats: dict[str, Any],
    ) -> ServerModel:
        s = self.s
        p = s.platform

        t_start = time.perf_counter()

        def since_receipt() -> float:
            return round(max(0.0, time.time() * 1000 - job.receivedAtMs), 1)

        session = await s.aws.call(
            s.aws.store.get_session, job.sessionId, job.owner, spans=spans, what="dynamodb"
        )
        if session is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"session {job.sessionId} not found", job.requestId)
        lecture = await s.aws.call(
            s.aws.store.get_lecture, session["lectureId"], job.owner, spans=spans, what="dynamodb"
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

        question_audio = await self._question_audio(job, spans) if job.text is None else None
        lecture_message, lecture_tokens = await self._lecture_message(session, lecture, spans)

        # Fixed prefix (never trimmed) + newest history that fits + the question.
        fixed = prompts.lecture_messages(lecture_message)
        if question_audio is not None:
            data, fmt, seconds = question_audio
            b64 = base64.b64encode(data).decode("ascii")
            question = prompts.question_message(audio=(b64, fmt, seconds))
        else:
            question = prompts.question_message(text=job.text)
        turns = list(session.get("history") or [])
        turn_messages = [prompts.turn_messages(t) for t in turns]

        def fit(text_tokens: Callable[[str], int]) -> planner.RequestBudget:
            fixed_tokens = planner.GENERATION_PROMPT_TOKENS + sum(
                lecture_tokens
                if m is lecture_message and lecture_tokens is not None
                else planner.estimate_message_tokens(m, p, text_tokens)
                for m in [*fixed, question]
            )
            turn_tokens = [
                sum(planner.estimate_message_tokens(m, p, text_tokens) for m in ms) for ms in turn_messages
            ]
            return planner.budget_request(fixed_tokens, turn_tokens, p)

        counted = [m for m in [*fixed, question] if not (m is lecture_message and lecture_tokens is not None)]
        counted += [m for ms in turn_messages for m in ms]
        budget = await self._fit(fit, counted, job, spans, stats)
        kept = turns[len(turns) - budget.kept_turns :] if budget.kept_turns else []
        messages = [*fixed, *prompts.history_messages(kept), question]
        stats.update(promptTokens=budget.prompt_tokens, droppedTurns=budget.dropped_turns)

        # The transcription runs beside the answer; the transcript opens the stream.
        transcript_task: asyncio.Task[str] | None = None
        asr_ms: float | None = None
        if question_audio is not None:
            data, fmt, seconds = question_audio

            async def transcribe() -> str:
                nonlocal asr_ms
                t = time.perf_counter()
                async with s.admission.slot(adm.TRANSCRIBE):
                    text = await s.vllm.transcribe(
                        data,
                        fmt,
                        seconds,
                        max(64, int(seconds / 60 * p.audio.transcript_tokens_per_minute * 2) + 32),
                    )
                spans.add(t, time.perf_counter(), "vllm.transcribe")
                asr_ms = since_receipt()
                outbox.release(Transcript(requestId=job.requestId, text=text or "(inaudible)"))
                return text

            transcript_task = asyncio.create_task(transcribe())
            pending.append(transcript_task)

        speak = job.voice
        audio_urls: list[str] = []
        engines: list[str] = []
        tts_failures = 0  # consecutive
        tts_failed = False
        sentence_queue: asyncio.Queue[asyncio.Task[tuple[str, str] | None] | None] = asyncio.Queue()
        sentence_texts: list[str] = []

        async def speak_sentence(seq: int, text: str) -> tuple[str, str] | None:
            nonlocal tts_failures, tts_failed
            if tts_failed:
                return None
            t = time.perf_counter()
            try:
                speech = await s.tts.speak(text, s.voice or p.tts.default_voice)
            except UpstreamError as exc:
                tts_failures += 1
                if tts_failures >= TTS_GIVE_UP_AFTER_FAILURES:
                    tts_failed = True
                log.warning(
                    "request %s: sentence %d not spoken (%s)%s",
                    job.requestId,
                    seq,
                    exc,
                    "; answering the rest without speech" if tts_failed else "",
                )
                return None
            finally:
                spans.add(t, time.perf_counter(), "tts")
            tts_failures = 0
            key = keys.response_key(job.sessionId, job.requestId, seq, p)
            await s.aws.put(key, speech.audio, "audio/mpeg", spans)
            return s.aws.presign(key, p.limits.response_url_expiry_seconds), speech.engine

        async def announce() -> None:
            seq = 0
            while (task := await sentence_queue.get()) is not None:
                text = sentence_texts.pop(0)
                result = await task
                if result is None:
                    continue
                url, engine = result
                audio_urls.append(url)
                engines.append(engine)
                outbox.send(Audio(requestId=job.requestId, seq=seq, url=url, text=text))
                seq += 1

        announcer = asyncio.create_task(announce()) if speak else None
        if announcer is not None:
            pending.append(announcer)
        tts_count = 0

        def to_speech(sentence: str) -> None:
            nonlocal tts_count
            if not speak:
                return
            task = asyncio.create_task(speak_sentence(tts_count, sentence))
            pending.append(task)
            sentence_texts.append(sentence)
            sentence_queue.put_nowait(task)
            tts_count += 1

        splitter = SentenceSplitter()
        pieces: list[str] = []
        first_token_ms: float | None = None
        t_queue = time.perf_counter()
        async with s.admission.slot(adm.ANSWER):
            t_answer = time.perf_counter()
            spans.add(t_queue, t_answer, "queue")
            stats["answerSentMs"] = round((t_answer - t_start) * 1000, 1)
            try:
                async for piece in s.vllm.stream_answer(messages, budget.max_tokens):
                    if first_token_ms is None:
                        first_token_ms = since_receipt()
                        stats["answerFirstTokenMs"] = round((time.perf_counter() - t_start) * 1000, 1)
                    pieces.append(piece)
                    outbox.send(AnswerDelta(requestId=job.requestId, text=piece))
                    for sentence in splitter.feed(piece):
                        to_speech(sentence)
                    if outbox.gone:
                        break
            finally:
                spans.add(t_answer, time.perf_counter(), "vllm.answer")
        rest = splitter.flush()
        if rest:
            to_speech(rest)
        sentence_queue.put_nowait(None)

        transcript_text: str | None = None
        if transcript_task is not None:
            transcript_text = await transcript_task
        if announcer is not None:
            await announcer

        answer_text = "".join(pieces).strip()
        turn = {
            "requestId": job.requestId,
            "question": job.text if job.text is not None else (transcript_text or ""),
            "answer": answer_text,
            "voice": job.text is None,
            "at": int(time.time()),
        }
        await s.aws.call(s.aws.store.append_turn, job.sessionId, turn, spans=spans, what="dynamodb")
        tts_engine: str | None = None
        if speak:
            tts_engine = ",".join(sorted(set(engines))) if engines else NO_TTS_ENGINE
        stats.update(sentences=tts_count, spoken=len(audio_urls), ttsFailed=tts_failed)
        if not outbox.hold:
            await outbox.drained()
        timings = Timings(
            asrMs=asr_ms,
            firstTokenMs=first_token_ms,
            firstAudioMs=_first_audio(outbox, job, audio_urls),
            totalMs=since_receipt(),
        )
        stats.update(timings.model_dump())
        return Answer(
            requestId=job.requestId, text=answer_text, audio=audio_urls, ttsEngine=tts_engine, timings=timings
        )


def _first_audio(outbox: Outbox, job: QueryJob, urls: list[str]) -> float | None:
    if not urls:
        return None
    if outbox.first_audio_at is not None:
        return round(max(0.0, outbox.first_audio_at - job.receivedAtMs), 1)
    return None


def _by_kind(spans: Spans) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b, what in spans.intervals:
        out[what] = out.get(what, 0.0) + (b - a)
    return out
