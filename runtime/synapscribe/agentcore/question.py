"""The question's audio: read, checked and made a format the model takes (`read_question_audio`),
and transcribed beside the answer (`QuestionTranscription`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass

from synapscribe import keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.jobs import QueryJob
from synapscribe.agentcore.media import MediaError, duration_seconds, to_mp3
from synapscribe.agentcore.query import Query
from synapscribe.audio.formats import ENGINE_FORMATS, not_audio_reason, sniff
from synapscribe.contract import ContractError, ErrorCode, Transcript


@dataclass
class QuestionAudio:
    """The question's audio as the model takes it (a direct format), and its length."""

    data: bytes
    fmt: str
    seconds: float


async def read_question_audio(deps: AgentCoreDeps, job: QueryJob, spans: Spans) -> QuestionAudio:
    """The question's audio, inline (base64) or uploaded (`queryKey`), as the model takes it and
    within the limits; a `ContractError` saying what is wrong otherwise."""
    p = deps.platform
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
        blob = await deps.aws.get(job.queryKey or "", spans)
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


class QuestionTranscription:
    """A voice question transcribed beside its answer; the `transcript` goes out once it is ready,
    wherever the answer's stream is by then (the answer's first audio does not wait for it)."""

    def __init__(self, deps: AgentCoreDeps, query: Query, audio: QuestionAudio) -> None:
        self.deps = deps
        self.query = query
        self.audio = audio
        self.asr_ms: float | None = None
        self._task: asyncio.Task[str] = query.spawn(self._transcribe())

    def _max_tokens(self) -> int:
        # Room for twice the usual tokens per minute of speech (a fast speaker), never under 64.
        per_minute = self.deps.platform.audio.transcript_tokens_per_minute
        return max(64, int(self.audio.seconds / 60 * per_minute * 2) + 32)

    async def _transcribe(self) -> str:
        q, a = self.query, self.audio
        t = time.perf_counter()
        async with self.deps.admission.slot(adm.TRANSCRIBE):
            text = await self.deps.vllm.transcribe(a.data, a.fmt, a.seconds, self._max_tokens())
        q.spans.add(t, time.perf_counter(), "vllm.transcribe")
        self.asr_ms = q.since_receipt()
        q.outbox.send(Transcript(requestId=q.request_id, text=text or "(inaudible)"))
        return text

    async def text(self) -> str:
        return await self._task
