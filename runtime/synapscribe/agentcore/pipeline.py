"""The query pipeline: question in, streamed text and spoken sentences out, in contract order.

A voice question's audio goes straight into the answering request while a second request
transcribes it beside it; answer text and speech go out as soon as they exist, and the
`transcript` whenever it is ready (before, between or after them, always before the `answer`).
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synapscribe import final_claim, keys, planner
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import citations, media_refs, prompts
from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.interrupts import Interrupts, Stopped, until_stopped
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.lectures import LectureContexts
from synapscribe.agentcore.media import MediaError, duration_seconds, to_mp3
from synapscribe.agentcore.sentences import SentenceSplitter
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import (
    UpstreamError,
    UpstreamTooLargeError,
    VllmClient,
)
from synapscribe.audio.formats import ENGINE_FORMATS, not_audio_reason, sniff
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
    #: the lecture items this host's model server holds (sent by uuid alone: media_refs.py)
    held: media_refs.HeldMedia = field(default_factory=media_refs.HeldMedia)
    counter: planner.TextTokenCounter | None = None  # made from `vllm` when first needed
    interrupts: Interrupts = field(default_factory=Interrupts)  # the contract's `cancel`

    def text_counter(self) -> planner.TextTokenCounter:
        if self.counter is None:
            self.counter = planner.TextTokenCounter(self.vllm.count_tokens)
        return self.counter

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


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
    """Messages to one connection, pushed in the order they are sent, by one task.

    Answer deltas are paced (at most one push per DELTA_INTERVAL_SECONDS; pieces that arrive in
    between, or pile up behind a slow push, are joined into one message). Anything else in the
    queue flushes the pending delta at once, so speech is never held back by the pacing.
    """

    _END = object()

    def __init__(self, aws: AwsIo, connection_id: str, spans: Spans) -> None:
        self.aws = aws
        self.connection_id = connection_id
        self.spans = spans
        self.gone = False
        self.first_audio_at: float | None = None  # epoch ms
        # What the client is sent (a stopped answer's final repeats it).
        self.streamed: list[str] = []
        self.spoken: list[str] = []
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
        if isinstance(message, AnswerDelta):
            self.streamed.append(message.text)
        elif isinstance(message, Audio):
            self.spoken.append(message.url)
        self._put(message)

    def abandon(self) -> None:
        """End without a final message (the query is not ours to answer)."""
        self._put(self._END)

    def finish_with(self, message: ServerModel) -> None:
        """The last message (answer or error)."""
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


@dataclass
class Query:
    """One question in flight: its job, where its messages go, the tasks to cancel when it ends,
    and the figures logged for it."""

    job: QueryJob
    spans: Spans
    outbox: Outbox
    stats: dict[str, Any]
    pending: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.job.requestId

    def since_receipt(self) -> float:
        """Milliseconds since the edge received the query (the contract's timings)."""
        return round(max(0.0, time.time() * 1000 - self.job.receivedAtMs), 1)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A task of this query, cancelled if the query ends before it does."""
        task = asyncio.create_task(coro)
        self.pending.append(task)
        return task


@dataclass
class QuestionAudio:
    """The question's audio as the model takes it (a direct format), and its length."""

    data: bytes
    fmt: str
    seconds: float


class QuestionTranscription:
    """A voice question transcribed beside its answer; the `transcript` goes out once it is ready,
    wherever the answer's stream is by then (the answer's first audio does not wait for it)."""

    def __init__(self, deps: AgentCoreDeps, query: Query, audio: QuestionAudio) -> None:
        self.s = deps
        self.query = query
        self.audio = audio
        self.asr_ms: float | None = None
        self._task: asyncio.Task[str] = query.spawn(self._transcribe())

    def _max_tokens(self) -> int:
        # Room for twice the usual tokens per minute of speech (a fast speaker), never under 64.
        per_minute = self.s.platform.audio.transcript_tokens_per_minute
        return max(64, int(self.audio.seconds / 60 * per_minute * 2) + 32)

    async def _transcribe(self) -> str:
        q, a = self.query, self.audio
        t = time.perf_counter()
        async with self.s.admission.slot(adm.TRANSCRIBE):
            text = await self.s.vllm.transcribe(a.data, a.fmt, a.seconds, self._max_tokens())
        q.spans.add(t, time.perf_counter(), "vllm.transcribe")
        self.asr_ms = q.since_receipt()
        q.outbox.send(Transcript(requestId=q.request_id, text=text or "(inaudible)"))
        return text

    async def text(self) -> str:
        return await self._task


class Speech:
    """One answer's sentences spoken (TTS, concurrently) and announced as `audio`, in order.

    A sentence whose TTS fails is left out; TTS_GIVE_UP_AFTER_FAILURES failures in a row mean
    the speech service is down, and the rest of the answer is not spoken.
    """

    def __init__(self, deps: AgentCoreDeps, query: Query) -> None:
        self.s = deps
        self.query = query
        self.urls: list[str] = []
        self.engines: list[str] = []
        self.count = 0  # sentences given to TTS
        self.failed = False
        self._failures = 0  # in a row
        self._queue: asyncio.Queue[tuple[asyncio.Task[tuple[str, str] | None], str] | None] = asyncio.Queue()
        self._announcer = query.spawn(self._announce())

    def say(self, sentence: str) -> None:
        task = self.query.spawn(self._speak(self.count, sentence))
        self._queue.put_nowait((task, sentence))
        self.count += 1

    def close(self) -> None:
        """No more sentences: the announcer ends after the last one."""
        self._queue.put_nowait(None)

    async def finished(self) -> None:
        await self._announcer

    def engine(self) -> str:
        return ",".join(sorted(set(self.engines))) if self.engines else NO_TTS_ENGINE

    async def _speak(self, seq: int, text: str) -> tuple[str, str] | None:
        """The sentence's audio stored in S3: (presigned URL, TTS engine), or None if not spoken."""
        if self.failed:
            return None
        s, p, job = self.s, self.s.platform, self.query.job
        t = time.perf_counter()
        try:
            speech = await s.tts.speak(text, s.voice or p.tts.default_voice)
        except UpstreamError as exc:
            self._failed_once(seq, exc)
            return None
        finally:
            self.query.spans.add(t, time.perf_counter(), "tts")
        self._failures = 0
        key = keys.response_key(job.sessionId, job.requestId, seq, p)
        await s.aws.put(key, speech.audio, "audio/mpeg", self.query.spans)
        return s.aws.presign(key, p.limits.response_url_expiry_seconds), speech.engine

    def _failed_once(self, seq: int, exc: UpstreamError) -> None:
        self._failures += 1
        if self._failures >= TTS_GIVE_UP_AFTER_FAILURES:
            self.failed = True
        log.warning(
            "request %s: sentence %d not spoken (%s)%s",
            self.query.request_id,
            seq,
            exc,
            "; answering the rest without speech" if self.failed else "",
        )

    async def _announce(self) -> None:
        """Send each spoken sentence as `audio`, in the answer's order, numbered without gaps."""
        seq = 0
        while (item := await self._queue.get()) is not None:
            task, text = item
            result = await task
            if result is None:
                continue
            url, engine = result
            self.urls.append(url)
            self.engines.append(engine)
            self.query.outbox.send(Audio(requestId=self.query.request_id, seq=seq, url=url, text=text))
            seq += 1


class AnswerSlot:
    """The model slot of a query's answer, asked for as soon as the query is accepted.

    The request for it joins admission's queue while the query is prepared (session, audio,
    prompt: tens of ms, more under load), so in a burst a transcription that is ready earlier
    does not take the slot an answer accepted before it is about to need: the answers-first
    order admission.py keeps among waiters then holds from acceptance on (issue 12: at 8 slots,
    3 of a burst's 8 answers waited ~1.9 s behind early transcriptions). A preparation that
    fails still fails as before (its error, not `busy`); the request is then withdrawn.
    Released as soon as the answer's stream ends.
    """

    def __init__(self, deps: AgentCoreDeps, query: Query) -> None:
        self.admission = deps.admission
        self.query = query
        self._asked = time.perf_counter()
        self._task: asyncio.Task[None] = asyncio.create_task(self.admission.acquire(adm.ANSWER))
        self._released = False

    async def wait(self) -> None:
        """Until the slot is ours (raises BusyError when none freed within the queue timeout)."""
        await asyncio.shield(self._task)
        self.query.spans.add(self._asked, time.perf_counter(), "queue")

    def release(self) -> None:
        """Give the slot back, or withdraw the request for it (acquire releases a slot granted
        in the same instant it is cancelled)."""
        if self._released:
            return
        self._released = True
        if not self._task.done():
            self._task.cancel()
        elif not self._task.cancelled() and self._task.exception() is None:
            self.admission.release()


class AnswerStream:
    """The model's answer streamed to the client as `answerDelta`s, each complete sentence handed
    to speech as soon as it ends."""

    def __init__(self, deps: AgentCoreDeps, query: Query, speech: Speech | None) -> None:
        self.s = deps
        self.query = query
        self.speech = speech
        self.pieces: list[str] = []
        self.first_token_ms: float | None = None
        self._splitter = SentenceSplitter()

    @property
    def text(self) -> str:
        return "".join(self.pieces).strip()

    async def run(self, prompt: Prompt, budget: planner.RequestBudget, started: float) -> str:
        """Stream the answer in the model slot the query holds (AnswerSlot); `started` is when
        the query's work began. The lecture's items go by reference when the server holds them."""
        q = self.query
        t_answer = time.perf_counter()
        q.stats["answerSentMs"] = round((t_answer - started) * 1000, 1)
        pieces = media_refs.stream_answer(
            self.s.vllm,
            self.s.held,
            prompt.items,
            lambda ref: prompt.messages(budget, ref),
            budget.max_tokens,
        )
        try:
            async for piece in pieces:
                self._take(piece, started)
                if q.outbox.gone:
                    break
        finally:
            q.spans.add(t_answer, time.perf_counter(), "vllm.answer")
        rest = self._splitter.flush()
        if rest:
            self._say(rest)
        return self.text

    def _take(self, piece: str, started: float) -> None:
        q = self.query
        if self.first_token_ms is None:
            self.first_token_ms = q.since_receipt()
            q.stats["answerFirstTokenMs"] = round((time.perf_counter() - started) * 1000, 1)
        self.pieces.append(piece)
        q.outbox.send(AnswerDelta(requestId=q.request_id, text=piece))
        for sentence in self._splitter.feed(piece):
            self._say(sentence)

    def _say(self, sentence: str) -> None:
        spoken = citations.unspoken(sentence)  # "[from 01:00-02:00]" is shown, not read aloud
        if self.speech is not None and spoken:
            self.speech.say(spoken)


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


class QueryPipeline:
    def __init__(self, deps: AgentCoreDeps) -> None:
        self.s = deps

    # ------------------------------------------------------------------ inputs

    async def _question_audio(self, job: QueryJob, spans: Spans) -> QuestionAudio:
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
        fmt = sniff(data)
        if fmt is None:
            raise ContractError(
                ErrorCode.UNSUPPORTED_MEDIA,
                not_audio_reason(data),
                job.requestId,
            )
        try:
            if fmt not in ENGINE_FORMATS:
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
        return QuestionAudio(data, fmt, seconds)

    async def _lecture_message(
        self, session: dict[str, Any], lecture: dict[str, Any], spans: Spans
    ) -> tuple[dict[str, Any], int | None, list[prompts.LectureAudioItem]]:
        """The lecture as a chat message, its exact token count when the model counted it, and
        its audio items (audio mode)."""
        if session.get("contextMode") == "transcript":
            transcript = await self.s.lectures.transcript(lecture, spans)
            message = prompts.lecture_transcript_message(transcript.segments)
            if transcript.tokens is None:
                return message, None, []
            exact = transcript.tokens + planner.MESSAGE_OVERHEAD_TOKENS + planner.estimate_text_tokens("user")
            return message, exact, []
        items = await self.s.lectures.audio_items(lecture, spans)
        return prompts.lecture_audio_message(items), None, items

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
        key = final_claim.key(job.requestId, job.receivedAtMs)
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
        outbox = Outbox(self.s.aws, job.connectionId, spans)
        stats: dict[str, Any] = {"requestId": job.requestId, "kind": "voice" if voice_in else "text"}
        query = Query(job, spans, outbox, stats)
        recorded = False
        try:
            recorded = await self._claim_final(job, spans)
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
                    asyncio.shield(self._send_final(job, spans, outbox, busy, recorded)), 5
                )
            raise
        except Exception as exc:
            final = self._error_final(job, exc)
        finally:
            for task in query.pending:
                task.cancel()
        if isinstance(final, ErrorMessage):
            stats["error"] = final.code.value
        if not await self._send_final(job, spans, outbox, final, recorded):
            return
        _log_figures(stats, spans, t0, cpu0)

    def _error_final(self, job: QueryJob, exc: Exception) -> ErrorMessage:
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
                f"{self.s.platform.context.question_tokens} tokens); shorten the question",
                requestId=rid,
            )
        if isinstance(exc, UpstreamTooLargeError):
            return too_large_error(rid, exc)
        return internal_error(rid, "answering")

    async def _claim_final(self, job: QueryJob, spans: Spans) -> bool:
        """final_claim.claim with our deadline, before anything is pushed.

        True when the claim (and its deadline) is recorded; False when the claim call failed.
        Raises FinalClaimedElsewhere when the claim was lost (the edge's hand-off timed out and
        it answered the client itself, or the connection is gone). A failing claim is logged and
        the query answered: a possible second final is better than none.
        """
        store = self.s.aws.store
        key = final_claim.key(job.requestId, job.receivedAtMs)
        due = final_claim.deadline(store, self.s.platform, job.owner, job.requestId)
        try:
            claimed = await self.s.aws.call(
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
        """final_claim.settle just before the final is sent. False when the sweeper already took
        the final over (we were past the deadline): ours must not be sent. Called only when
        _claim_final recorded a deadline. A failing settle call is logged and the final sent: a
        possible second final is better than none."""
        key = final_claim.key(job.requestId, job.receivedAtMs)
        store = self.s.aws.store
        try:
            return bool(
                await self.s.aws.call(
                    final_claim.settle, store, job.connectionId, key, spans=spans, what="dynamodb"
                )
            )
        except Exception:
            log.exception(
                "request %s: settling the final-message claim failed; sending anyway", job.requestId
            )
            return True

    async def _answer_unless_stopped(self, q: Query) -> ServerModel:
        """The answer, or what was sent of it as an `answer` with `stopped` when the student
        stopped it (the contract's `cancel`, interrupts.py): not kept in the history."""
        job = q.job
        answering = self.s.interrupts.watch(job.owner, job.requestId)
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
            self.s.interrupts.forget(job.owner, job.requestId)

    async def _answer(self, q: Query) -> ServerModel:
        slot = AnswerSlot(self.s, q)
        try:
            return await self._answer_in(q, slot)
        finally:
            slot.release()

    async def _answer_in(self, q: Query, slot: AnswerSlot) -> ServerModel:
        started = time.perf_counter()
        job = q.job
        session, lecture = await self._session_and_lecture(job, q.spans)
        question_audio = await self._question_audio(job, q.spans) if job.text is None else None
        prompt = await self._prompt(job, q.spans, session, lecture, question_audio)
        budget = await self._fit(prompt.fit, prompt.counted(), job, q.spans, q.stats)
        q.stats.update(promptTokens=budget.prompt_tokens, droppedTurns=budget.dropped_turns)

        # The transcription runs beside the answer; the final `answer` waits for it (its text
        # is the question kept in history for follow-ups).
        transcription = (
            QuestionTranscription(self.s, q, question_audio) if question_audio is not None else None
        )
        speech = Speech(self.s, q) if job.voice else None
        stream = AnswerStream(self.s, q, speech)
        await slot.wait()
        answer_text = await stream.run(prompt, budget, started)
        slot.release()  # the transcription, speech and history below need no answer slot
        if speech is not None:
            speech.close()
        transcript_text = await transcription.text() if transcription is not None else None
        if speech is not None:
            await speech.finished()

        question_text = job.text if job.text is not None else (transcript_text or "")
        await self._record_turn(job, q.spans, question_text, answer_text)
        answer = await self._answered(q, stream, speech, transcription)
        return answer.model_copy(
            update={"citations": citations.parse(answer.text, lecture.get("durationSeconds"))}
        )

    async def _session_and_lecture(
        self, job: QueryJob, spans: Spans
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The query's session and its lecture, which must be ready to answer from."""
        store = self.s.aws.store
        session = await self.s.aws.call(
            store.get_session, job.sessionId, job.owner, spans=spans, what="dynamodb"
        )
        if session is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"session {job.sessionId} not found", job.requestId)
        lecture = await self.s.aws.call(
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

    async def _prompt(
        self,
        job: QueryJob,
        spans: Spans,
        session: dict[str, Any],
        lecture: dict[str, Any],
        question_audio: QuestionAudio | None,
    ) -> Prompt:
        lecture_message, lecture_tokens, items = await self._lecture_message(session, lecture, spans)
        if question_audio is not None:
            b64 = base64.b64encode(question_audio.data).decode("ascii")
            question = prompts.question_message(audio=(b64, question_audio.fmt, question_audio.seconds))
        else:
            question = prompts.question_message(text=job.text)
        return Prompt(
            platform=self.s.platform,
            lecture_message=lecture_message,
            lecture_tokens=lecture_tokens,
            question=question,
            turns=list(session.get("history") or []),
            items=items,
        )

    async def _record_turn(self, job: QueryJob, spans: Spans, question: str, answer: str) -> None:
        """Keep the turn in the session's history, for follow-up questions."""
        turn = {
            "requestId": job.requestId,
            "question": question,
            "answer": answer,
            "voice": job.text is None,
            "at": int(time.time()),
        }
        await self.s.aws.call(self.s.aws.store.append_turn, job.sessionId, turn, spans=spans, what="dynamodb")

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
            firstAudioMs=_first_audio(q.outbox, q.job, urls),
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


def _log_figures(stats: dict[str, Any], spans: Spans, t0: float, cpu0: float) -> None:
    """Log the query's figures (one JSON line on synapscribe.agentcore.metrics)."""
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
