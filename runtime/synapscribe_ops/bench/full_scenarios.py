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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from synapscribe.contract import Audio, Lecture, Session, UploadUrl
from synapscribe.platform import load_platform
from synapscribe_local import audiogen

from synapscribe_ops.bench.accuracy import names_all, pooled_wer, word_errors
from synapscribe_ops.bench.report import TARGET_WORD_ACCURACY, TARGETS, BenchResults, Row, Table
from synapscribe_ops.smoke.client import ClientError, QueryResult, Received, StackClient

Connector = Callable[[str], Awaitable[StackClient]]
Tick = Callable[[str], None]

STANDIN_PREFIX = "[stand-in]"
VOICE_QUESTION = "Where does photosynthesis take place in the plant?"
TEXT_QUESTION = "What does the enzyme rubisco do in the Calvin cycle?"
FOLLOW_UP = "Could you say that again more simply, in one sentence?"
#: What the lecture (audiogen.DEFAULT_LECTURE) says to each question: the terms a right answer names.
LECTURE_SAYS: dict[str, tuple[str, ...]] = {
    VOICE_QUESTION: ("chloroplast",),  # "It takes place in the chloroplasts …"
    TEXT_QUESTION: ("carbon dioxide",),  # "… the enzyme rubisco fixes carbon dioxide from the air."
}
_WORDS = [
    "light",
    "energy",
    "chlorophyll",
    "leaves",
    "carbon",
    "dioxide",
    "water",
    "sugar",
    "oxygen",
    "plants",
    "cells",
    "stroma",
    "membrane",
    "enzyme",
    "cycle",
    "glucose",
    "energy",
    "photons",
    "green",
    "pigment",
    "absorbs",
    "blue",
    "red",
    "reactions",
    "produce",
    "release",
]
_WORD_RE = re.compile(r"[a-z0-9']+")
#: How long to wait for a `lecture` push before asking with `getLecture`.
LECTURE_POLL_SECONDS = 10.0


@dataclass
class FullConfig:
    workdir: Path
    repeats: int = 3
    transcription_seconds: list[float] = field(default_factory=lambda: [30.0, 300.0, 1200.0])
    tts_words: list[int] = field(default_factory=lambda: [20, 50, 100])
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    lecture_seconds: float = 60.0
    metrics_url: str | None = None
    tts_url: str | None = None
    query_timeout: float = 120.0
    ready_timeout: float = 1800.0
    request_timeout: float = 30.0


class CaseFailed(Exception):
    pass


# --------------------------------------------------------------------------------------------
# vLLM metrics (Prometheus text), read where the operator can reach them


def parse_metrics(text: str) -> dict[str, float]:
    """Sum of each metric's samples, by name (labels dropped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFNa]+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


class Metrics:
    def __init__(self, url: str | None, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.problem: str | None = None if url else "no --metrics-url given"

    async def read(self) -> dict[str, float] | None:
        if not self.url:
            return None
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(self.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.problem = f"{self.url}: {exc}"
            return None
        return parse_metrics(response.text)


def _counter(m: dict[str, float] | None, name: str) -> float | None:
    if m is None:
        return None
    return m.get(name, m.get(name.removesuffix("_total")))


def _kv_usage(m: dict[str, float] | None) -> float | None:
    if m is None:
        return None
    for name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        if name in m:
            return m[name]
    return None


# --------------------------------------------------------------------------------------------
# Stack operations


class Bench:
    def __init__(self, connect: Connector, config: FullConfig, results: BenchResults, tick: Tick) -> None:
        self.connect = connect
        self.config = config
        self.results = results
        self.tick = tick
        self.platform = load_platform()
        self.metrics = Metrics(config.metrics_url)
        self.clients: list[StackClient] = []
        self.nonce = uuid.uuid4().hex[:6]
        self.main: StackClient | None = None
        self.lecture_id: str | None = None
        #: (what the generated question says, its transcript) of every voice question answered
        self.heard: list[tuple[str, str]] = []
        #: (question, whether its answer named what the lecture says) of every answer checked
        self.named: list[tuple[str, bool]] = []

    async def open(self, label: str) -> StackClient:
        client = await self.connect(label)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    def _see_answer(self, result: QueryResult) -> None:
        answer = result.answer
        if answer is not None and answer.text.startswith(STANDIN_PREFIX):
            self.results.standin = True

    def _check_words(self, question: str, result: QueryResult, *, spoken: str | None = None) -> None:
        """Record the transcript of a generated question that says `spoken`, and whether the answer
        names what the lecture says to `question` (a key of LECTURE_SAYS)."""
        if spoken is not None and result.transcript is not None:
            self.heard.append((spoken, result.transcript.removeprefix(STANDIN_PREFIX)))
        if result.answer is not None:
            self.named.append((question, names_all(result.answer.text, LECTURE_SAYS[question])))

    async def expect(self, client: StackClient, message: dict[str, Any], kind: str) -> Received:
        got = await client.request(message, kind, within=self.config.request_timeout)
        if got.type != kind:
            raise CaseFailed(f"expected {kind}, got {str(got.raw)[:200]}")
        return got

    async def upload(self, client: StackClient, kind: str, path: Path) -> UploadUrl:
        data = await asyncio.to_thread(path.read_bytes)
        got = await self.expect(
            client,
            {
                "action": "createUpload",
                "kind": kind,
                "filename": path.name,
                "contentType": "audio/mpeg",
                "sizeBytes": len(data),
            },
            "uploadUrl",
        )
        assert isinstance(got.message, UploadUrl)
        response = await client.upload(got.message, data, path.name, "audio/mpeg")
        if response.status_code not in (200, 201, 204):
            raise CaseFailed(f"presigned POST answered {response.status_code}: {response.text[:200]}")
        return got.message

    async def lecture_ready(self, client: StackClient, path: Path) -> tuple[str, float, Lecture]:
        """Upload a lecture; its id, the seconds from upload to `ready`, and the `lecture` message."""
        up = await self.upload(client, "lecture", path)
        uploaded = time.monotonic()
        deadline = uploaded + self.config.ready_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaseFailed(f"lecture {up.uploadId} not ready within {self.config.ready_timeout:g} s")
            try:
                got = await client.wait_type(
                    "lecture",
                    where=lambda r: bool(r.data and r.data.get("lectureId") == up.uploadId),
                    within=min(LECTURE_POLL_SECONDS, remaining),
                )
            except ClientError:
                if not client.is_open:
                    raise
                # No push yet: ask, as a client that reconnected would (the answer is a `lecture` too).
                await client.send({"action": "getLecture", "lectureId": up.uploadId})
                continue
            assert isinstance(got.message, Lecture)
            if got.message.status == "ready":
                return up.uploadId, got.at - uploaded, got.message
            if got.message.status == "rejected":
                raise CaseFailed(f"lecture rejected: {got.message.reason}")

    async def start_session(self, client: StackClient, lecture_id: str) -> str:
        got = await self.expect(client, {"action": "startSession", "lectureId": lecture_id}, "session")
        assert isinstance(got.message, Session)
        return got.message.sessionId

    async def ask(self, client: StackClient, session_id: str, **fields: Any) -> QueryResult:
        result = await client.query(session_id, within=self.config.query_timeout, **fields)
        self._see_answer(result)
        if result.timed_out:
            raise CaseFailed(f"no answer within {self.config.query_timeout:g} s")
        if result.error is not None:
            raise CaseFailed(f"error {result.error.code}: {result.error.message}")
        if result.answer is None:
            raise CaseFailed("no answer")
        return result

    async def lecture_file(self, seconds: float, tag: str) -> Path:
        """A generated lecture; `tag` makes its bytes unique (no cache of any kind can serve it)."""
        path = self.config.workdir / f"lecture-{tag}-{seconds:g}s.mp3"
        sentences = (*audiogen.DEFAULT_LECTURE, f"This recording is benchmark lecture {tag} {self.nonce}.")
        await asyncio.to_thread(audiogen.make_lecture, path, seconds / 60, "mp3", sentences=sentences)
        return path

    # ----------------------------------------------------------------------------------------

    async def setup(self) -> None:
        self.main = await self.open("bench-main")
        path = await self.lecture_file(self.config.lecture_seconds, "main")
        self.lecture_id, _, _ = await self.lecture_ready(self.main, path)

    async def gpu_snapshot(self, stage: str) -> None:
        table = self.results.table("gpu")
        usage = _kv_usage(await self.metrics.read())
        row = table.row(stage)
        if usage is not None:
            row.samples.append(usage * 100)

    async def transcription(self) -> None:
        table = self.results.table("transcription")
        assert self.main is not None and self.lecture_id is not None
        session_id = await self.start_session(self.main, self.lecture_id)
        query_max = self.platform.limits.query_max_seconds
        for seconds in self.config.transcription_seconds:
            as_query = seconds <= query_max
            row = table.row(f"{seconds:g} s audio", target=TARGETS["transcription"], x=seconds)
            asr: list[float] = []
            modes: set[str] = set()
            failures = 0
            for i in range(self.config.repeats):
                try:
                    path = await self.lecture_file(seconds, f"t{seconds:g}-{i}")
                    if as_query:
                        up = await self.upload(self.main, "query", path)
                        result = await self.ask(self.main, session_id, queryKey=up.key, voice=False)
                        heard = result.timings()["transcriptMs"]
                        if heard is None:
                            raise CaseFailed("no transcript message for a voice query")
                        row.samples.append(heard / 1000)
                        answer = result.answer
                        if answer is not None and answer.timings.asrMs is not None:
                            asr.append(answer.timings.asrMs / 1000)
                        modes.add("voice query")
                    else:
                        _, ready_s, lecture = await self.lecture_ready(self.main, path)
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
        table = self.results.table("tts")
        if not self.config.tts_url:
            table.rows.append(
                Row(
                    "direct TTS service",
                    note="not reachable: the TTS service listens on the instance's loopback; "
                    "pass --tts-url (local stack) or use the per-sentence row below",
                )
            )
            return
        url = self.config.tts_url.rstrip("/") + "/v1/audio/speech"
        async with httpx.AsyncClient(timeout=self.config.request_timeout) as http:
            for words in self.config.tts_words:
                row = table.row(f"{words} words (TTS service)", target=TARGETS["tts_sentence"], x=words)
                engines: set[str] = set()
                for i in range(self.config.repeats):
                    text = _sentence(words, f"{self.nonce}{i}")
                    started = time.monotonic()
                    try:
                        response = await http.post(
                            url, json={"input": text, "voice": "en", "response_format": "mp3"}
                        )
                        response.raise_for_status()
                        row.samples.append(time.monotonic() - started)
                        engines.add(response.headers.get("X-TTS-Engine", "?"))
                    except httpx.HTTPError as exc:
                        row.note = f"failed: {exc}"[:200]
                    self.tick(f"tts {words} words")
                row.extra["engine"] = ", ".join(sorted(engines)) or "-"
        table.rows[-1].note = table.rows[-1].note or "target is per sentence; longer texts are several"

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
                session_id = await self.start_session(self.main, self.lecture_id)
                result = await self.ask(self.main, session_id, audio=audio_b64, voice=True)
                self._check_words(VOICE_QUESTION, result, spoken=VOICE_QUESTION)
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
                path = await self.lecture_file(self.config.lecture_seconds, f"f{i}")
                lecture_id, _, _ = await self.lecture_ready(main, path)
                session_id = await self.start_session(main, lecture_id)
                for row, ft_row, text in ((cold, cold_ft, TEXT_QUESTION), (warm, warm_ft, FOLLOW_UP)):
                    before = await self.metrics.read()
                    result = await self.ask(main, session_id, text=text, voice=False)
                    after = await self.metrics.read()
                    if text in LECTURE_SAYS:
                        self._check_words(text, result)
                    answer = result.answer
                    assert answer is not None
                    total = result.timings()["totalMs"]
                    if total is not None:
                        row.samples.append(total / 1000)
                    if answer.timings.firstTokenMs is not None:
                        ft_row.samples.append(answer.timings.firstTokenMs / 1000)
                    hit = _delta(before, after, "vllm:prefix_cache_hits_total")
                    queried = _delta(before, after, "vllm:prefix_cache_queries_total")
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
                clients = [await self.open(f"bench-c{c}-{k}") for k in range(c)]
                sessions = [await self.start_session(cl, self.lecture_id) for cl in clients]
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
                    self._see_answer(result)
                    self._check_words(TEXT_QUESTION, result)
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
        table = self.results.table("accuracy")
        heard = table.row(
            "transcript word accuracy, generated voice questions",
            target=TARGET_WORD_ACCURACY,
            higher_is_better=True,
        )
        heard.samples += [word_errors(spoken, transcript).accuracy * 100 for spoken, transcript in self.heard]
        heard.extra["WER (pooled)"] = f"{pooled_wer(self.heard):.1%}" if self.heard else "-"
        heard.extra["of"] = f"{len(self.heard)} transcript(s)"
        if not self.heard:
            heard.note = "no voice question was answered with a transcript"
        named = table.row("answers that name what the lecture says")
        named.samples += [100.0 if ok else 0.0 for _, ok in self.named]
        hits = sum(ok for _, ok in self.named)
        named.extra["WER (pooled)"] = "-"
        named.extra["of"] = f"{hits} of {len(self.named)} answer(s)"
        named.note = "; ".join(f"{q!r} must name {' and '.join(t)}" for q, t in LECTURE_SAYS.items())

    async def _poll_kv(self, stop: asyncio.Event, row: Row) -> None:
        if not self.metrics.url:
            return
        while not stop.is_set():
            usage = _kv_usage(await self.metrics.read())
            if usage is not None:
                row.samples.append(usage * 100)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


def _delta(before: dict[str, float] | None, after: dict[str, float] | None, name: str) -> float | None:
    b, a = _counter(before, name), _counter(after, name)
    return None if a is None or b is None else a - b


def _sentence(words: int, salt: str) -> str:
    chosen = [_WORDS[(i * 7 + len(salt)) % len(_WORDS)] for i in range(words - 1)]
    return " ".join(["Benchmark", *chosen[: words - 2], salt]) + "."


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
