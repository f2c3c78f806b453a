"""The measurements of `synapscribe bench full`, through the smoke test's WebSocket client.

Each scenario fills one table of `BenchResults`. A case that fails (error message, timeout) is
counted in its row's note instead of stopping the run, so a partial deploy still gets a report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import statistics
import time
import uuid
from collections.abc import Callable

import httpx
from synapscribe.contract import Audio
from synapscribe.platform import load_platform
from synapscribe_local import audiogen

from synapscribe_ops.bench.answer_words import (
    FOLLOW_UP,
    LECTURE_SAYS,
    TEXT_QUESTION,
    VOICE_QUESTION,
    AnswerWords,
)
from synapscribe_ops.bench.full_stack import CaseFailed, Connector, FullConfig, StackOperations
from synapscribe_ops.bench.report import TARGETS, BenchResults, Row, Table
from synapscribe_ops.bench.tts_direct import measure_tts_direct
from synapscribe_ops.bench.vllm_metrics import Metrics, counter_delta, kv_usage
from synapscribe_ops.smoke.client import ClientError, QueryResult, StackClient

Tick = Callable[[str], None]

_WORD_RE = re.compile(r"[a-z0-9']+")


class Bench:
    """The scenarios, each filling its table of the results; the stack's operations are
    StackOperations (`stack`), the accuracy table's record AnswerWords (`words`)."""

    def __init__(self, connect: Connector, config: FullConfig, results: BenchResults, tick: Tick) -> None:
        self.config = config
        self.results = results
        self.tick = tick
        self.platform = load_platform()
        self.metrics = Metrics(config.metrics_url)
        self.nonce = uuid.uuid4().hex[:6]
        self.stack = StackOperations(connect, config, results, self.nonce)
        self.words = AnswerWords()
        self.main: StackClient | None = None
        self.lecture_id: str | None = None

    async def close(self) -> None:
        await self.stack.close()

    async def setup(self) -> None:
        self.main = await self.stack.open("bench-main")
        path = await self.stack.lecture_file(self.config.lecture_seconds, "main")
        self.lecture_id, _, _ = await self.stack.lecture_ready(self.main, path)

    async def gpu_snapshot(self, stage: str) -> None:
        table = self.results.table("gpu")
        usage = kv_usage(await self.metrics.read())
        row = table.row(stage)
        if usage is not None:
            row.samples.append(usage * 100)

    async def transcription(self) -> None:
        table = self.results.table("transcription")
        assert self.main is not None and self.lecture_id is not None
        session_id = await self.stack.start_session(self.main, self.lecture_id)
        query_max = self.platform.limits.query_max_seconds
        for seconds in self.config.transcription_seconds:
            as_query = seconds <= query_max
            row = table.row(f"{seconds:g} s audio", target=TARGETS["transcription"], x=seconds)
            asr: list[float] = []
            modes: set[str] = set()
            failures = 0
            for i in range(self.config.repeats):
                try:
                    path = await self.stack.lecture_file(seconds, f"t{seconds:g}-{i}")
                    if as_query:
                        up = await self.stack.upload(self.main, "query", path)
                        result = await self.stack.ask(self.main, session_id, queryKey=up.key, voice=False)
                        heard = result.timings()["transcriptMs"]
                        if heard is None:
                            raise CaseFailed("no transcript message for a voice query")
                        row.samples.append(heard / 1000)
                        answer = result.answer
                        if answer is not None and answer.timings.asrMs is not None:
                            asr.append(answer.timings.asrMs / 1000)
                        modes.add("voice query")
                    else:
                        _, ready_s, lecture = await self.stack.lecture_ready(self.main, path)
                        row.samples.append(ready_s)
                        modes.add(f"lecture, {lecture.contextMode} mode")
                except (CaseFailed, ClientError, audiogen.AudioGenError, httpx.HTTPError) as exc:
                    failures += 1
                    row.note = f"{failures} failed: {exc}"[:200]
                self.tick(f"transcription {seconds:g} s")
            stats = row.stats()
            row.extra["RTF (median)"] = f"{stats['median'] / seconds:.3f}" if stats else "-"
            row.extra["measured as"] = ", ".join(sorted(modes)) or "-"
            row.extra["server asrMs (median)"] = f"{statistics.median(asr):.3f} s" if asr else "-"
            if "audio mode" in row.extra["measured as"] and not row.note:
                row.note = "audio mode: upload to ready is validation only; the model hears it per question"

    async def tts_direct(self) -> None:
        """The TTS service itself, when reachable (tts_direct.py)."""
        await measure_tts_direct(self.config, self.results, self.nonce, self.tick)

    async def end_to_end(self) -> None:
        table = self.results.table("end_to_end")
        assert self.main is not None and self.lecture_id is not None
        question = self.config.workdir / "voice-question.mp3"
        await asyncio.to_thread(audiogen.speak, VOICE_QUESTION, question, bitrate_kbps=16)
        audio_b64 = base64.b64encode(await asyncio.to_thread(question.read_bytes)).decode("ascii")
        asr = table.row("transcription (server asrMs)", target=TARGETS["transcription"])
        # AgentCore hears the question inside the answer request and transcribes it beside it,
        # so the first token counts from receipt, not from the end of the transcription.
        first_token = table.row("first token (server, from receipt)", target=TARGETS["first_token"])
        speech = table.row("speech: first audio after first token (server)")
        first_audio = table.row("time to first audio (client)")
        complete = table.row("answer complete (client)", target=TARGETS["end_to_end"])
        sentence_lag = self.results.table("tts").row(
            "first sentence, through the stack", target=TARGETS["tts_sentence"]
        )
        sentence_lag.note = "its audio message minus the answerDelta that completed it (speech + S3 + push)"
        failures = 0
        for _ in range(self.config.repeats):
            try:
                session_id = await self.stack.start_session(self.main, self.lecture_id)
                result = await self.stack.ask(self.main, session_id, audio=audio_b64, voice=True)
                self.words.check(VOICE_QUESTION, result, spoken=VOICE_QUESTION)
                answer = result.answer
                assert answer is not None
                t = answer.timings
                client = result.timings()
                if t.asrMs is not None:
                    asr.samples.append(t.asrMs / 1000)
                if t.firstTokenMs is not None:
                    first_token.samples.append(t.firstTokenMs / 1000)
                if t.firstAudioMs is not None and t.firstTokenMs is not None:
                    speech.samples.append((t.firstAudioMs - t.firstTokenMs) / 1000)
                if client["firstAudioMs"] is not None:
                    first_audio.samples.append(client["firstAudioMs"] / 1000)
                if client["totalMs"] is not None:
                    complete.samples.append(client["totalMs"] / 1000)
                lag = first_sentence_audio_lag(result)
                if lag is not None:
                    sentence_lag.samples.append(lag)
            except (CaseFailed, ClientError) as exc:
                failures += 1
                complete.note = f"{failures} failed: {exc}"[:200]
            self.tick("end to end")

    async def follow_up(self) -> None:
        table = self.results.table("follow_up")
        main = self.main
        assert main is not None
        cold = table.row("first question on a new lecture", target=TARGETS["end_to_end"])
        warm = table.row("follow-up in the same session", target=TARGETS["end_to_end"])
        cold_ft = table.row("first token, first question", target=TARGETS["first_token"])
        warm_ft = table.row("first token, follow-up", target=TARGETS["first_token"])
        hits: dict[str, list[float]] = {cold.label: [], warm.label: []}
        rates: dict[str, list[float]] = {cold.label: [], warm.label: []}
        failures = 0
        for i in range(self.config.repeats):
            try:
                path = await self.stack.lecture_file(self.config.lecture_seconds, f"f{i}")
                lecture_id, _, _ = await self.stack.lecture_ready(main, path)
                session_id = await self.stack.start_session(main, lecture_id)
                for row, ft_row, text in ((cold, cold_ft, TEXT_QUESTION), (warm, warm_ft, FOLLOW_UP)):
                    before = await self.metrics.read()
                    result = await self.stack.ask(main, session_id, text=text, voice=False)
                    after = await self.metrics.read()
                    if text in LECTURE_SAYS:
                        self.words.check(text, result)
                    answer = result.answer
                    assert answer is not None
                    total = result.timings()["totalMs"]
                    if total is not None:
                        row.samples.append(total / 1000)
                    if answer.timings.firstTokenMs is not None:
                        ft_row.samples.append(answer.timings.firstTokenMs / 1000)
                    hit = counter_delta(before, after, "vllm:prefix_cache_hits_total")
                    queried = counter_delta(before, after, "vllm:prefix_cache_queries_total")
                    if hit is not None:
                        hits[row.label].append(hit)
                        if queried:
                            rates[row.label].append(hit / queried)
            except (CaseFailed, ClientError, audiogen.AudioGenError, httpx.HTTPError) as exc:
                failures += 1
                warm.note = f"{failures} failed: {exc}"[:200]
            self.tick("follow-up")
        for row in (cold, warm):
            h, r = hits[row.label], rates[row.label]
            row.extra["prefix-cache hit tokens (median)"] = f"{statistics.median(h):,.0f}" if h else "-"
            row.extra["hit rate (median)"] = f"{statistics.median(r):.0%}" if r else "-"
        if self.metrics.problem:
            warm.note = (
                warm.note + "; " if warm.note else ""
            ) + f"prefix cache not read: {self.metrics.problem}"

    async def throughput(self) -> None:
        table = self.results.table("throughput")
        assert self.lecture_id is not None
        peak = self.results.table("gpu").row("peak during the concurrency runs")
        for c in self.config.concurrency:
            row = table.row(
                f"{c} concurrent session{'s' if c > 1 else ''}", x=c, target=TARGETS["end_to_end"]
            )
            rates: list[float] = []
            errors: dict[str, int] = {}
            clients: list[StackClient] = []
            try:
                clients = [await self.stack.open(f"bench-c{c}-{k}") for k in range(c)]
                sessions = [await self.stack.start_session(cl, self.lecture_id) for cl in clients]
            except (CaseFailed, ClientError) as exc:
                row.note = f"could not open {c} sessions: {exc}"[:200]
                self.tick(f"throughput {c}")
                continue
            for r in range(self.config.repeats):
                stop = asyncio.Event()
                poller = asyncio.create_task(self._poll_kv(stop, peak))
                started = time.monotonic()
                outcomes = await asyncio.gather(
                    *(
                        # Each student asks in their own words: no answer or speech cache serves another.
                        cl.query(
                            s,
                            within=self.config.query_timeout,
                            text=f"{TEXT_QUESTION} I am student {k} of {c}, round {r} ({self.nonce}).",
                            voice=True,
                        )
                        for k, (cl, s) in enumerate(zip(clients, sessions, strict=True))
                    )
                )
                wall = time.monotonic() - started
                stop.set()
                await poller
                answered = 0
                for result in outcomes:
                    self.stack.see_answer(result)
                    self.words.check(TEXT_QUESTION, result)
                    total = result.timings()["totalMs"]
                    if result.answer is not None and total is not None:
                        row.samples.append(total / 1000)
                        answered += 1
                    else:
                        code = result.error.code if result.error is not None else "timeout"
                        errors[code] = errors.get(code, 0) + 1
                rates.append(answered / wall * 60)
                self.tick(f"throughput {c}")
            for cl in clients:
                await cl.close()
            row.extra["answers/min (median)"] = f"{statistics.median(rates):.1f}" if rates else "-"
            row.extra["errors"] = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0"

    def accuracy(self) -> None:
        """The accuracy table from what the other scenarios heard and answered."""
        self.words.fill(self.results.table("accuracy"))

    async def _poll_kv(self, stop: asyncio.Event, row: Row) -> None:
        if not self.metrics.url:
            return
        while not stop.is_set():
            usage = kv_usage(await self.metrics.read())
            if usage is not None:
                row.samples.append(usage * 100)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


def _words(text: str) -> int:
    return len(_WORD_RE.findall(text.lower()))


def first_sentence_audio_lag(result: QueryResult) -> float | None:
    """Seconds from the `answerDelta` that completed the first spoken sentence to its `audio` message.

    Only the first sentence: later ones also wait for the sentences before them to be spoken.
    """
    first = next((m for m in result.messages if isinstance(m.message, Audio)), None)
    if first is None or not isinstance(first.message, Audio):
        return None
    needed = _words(first.message.text)
    seen = 0
    for m in result.messages:
        if m.type == "answerDelta" and m.data is not None:
            seen += _words(str(m.data.get("text", "")))
            if seen >= needed:
                return first.at - m.at if first.at >= m.at else None
    return None


def new_results(url: str, mode: str, repeats: int, started: str) -> BenchResults:
    p = load_platform()
    results = BenchResults(
        url=url,
        mode=mode,
        repeats=repeats,
        started=started,
        platform={
            "model": p.model.served_name,
            "max_model_len": p.vllm.max_model_len,
            "gpu_memory_utilization": p.vllm.gpu_memory_utilization,
            "max_num_seqs": p.vllm.max_num_seqs,
        },
    )
    results.tables = [
        Table(
            "transcription",
            "Transcription latency and real-time factor",
            "Up to the voice-query limit the clip is uploaded as a voice query and timed to its "
            "`transcript` message; longer audio is uploaded as a lecture and timed from upload to "
            "`ready` (in transcript mode that includes transcribing it). RTF = latency / audio length.",
            extra_columns=["RTF (median)", "measured as", "server asrMs (median)"],
        ),
        Table(
            "tts",
            "Text-to-speech latency",
            "The TTS service directly (when reachable) for texts of the given length, and every "
            "sentence of the end-to-end answers through the stack.",
            extra_columns=["engine"],
        ),
        Table(
            "end_to_end",
            "End-to-end voice question",
            "A spoken question in a new session on the benchmark lecture, answered with speech. "
            "Server figures are AgentCore's `answer.timings` (from receipt); client figures from sending.",
        ),
        Table(
            "follow_up",
            "Multi-turn follow-up latency and the prefix cache",
            "A typed question on a lecture nobody asked about yet, then a follow-up in the same "
            "session. Prefix-cache hits are read from vLLM's `/metrics` around each question.",
            extra_columns=["prefix-cache hit tokens (median)", "hit rate (median)"],
        ),
        Table(
            "throughput",
            "Throughput by concurrent sessions",
            "N connections, each with its own session on the benchmark lecture, ask at the same moment; "
            "latency is each question's answer time.",
            extra_columns=["answers/min (median)", "errors"],
        ),
        Table(
            "accuracy",
            "Accuracy: transcripts and answers",
            "Word accuracy (1 - WER: substitutions, deletions and insertions over the question's words, "
            "case and punctuation ignored) of each voice question's `transcript` against the text the "
            "generated question speaks, target over 95 % (the median is compared); and the share of "
            "answers that name what the lecture says to their question (matched by stem). In percent.",
            extra_columns=["WER (pooled)", "of"],
            unit="%",
            about_words=True,
        ),
        Table(
            "gpu",
            "GPU memory (KV cache in use)",
            "vLLM's `kv_cache_usage_perc` at each stage (the KV cache itself is allocated at start-up: "
            "this is the share in use).",
            unit="%",
        ),
    ]
    return results
