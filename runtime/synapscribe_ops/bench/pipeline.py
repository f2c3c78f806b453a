"""`synapscribe bench pipeline`: AgentCore against the stand-in at the original report's latencies.

Starts moto, an @connections receiver, the model stand-in (`--report-latencies`: transcription
1.8 s, first token 0.4 s, then 40 tokens/s for about 170 tokens), the TTS service (0.3 s simulated
latency per sentence, espeak-ng) and AgentCore, all on loopback; then asks voice questions about
a 5-minute lecture (audio mode) and prints:

- AgentCore's own cost per query: its process CPU time while the query ran (all threads; the
  goal's verdict), and beside it its wall time for the query (HTTP accept to the `answer` pushed)
  minus every interval in which it was waiting on something outside itself (the model, TTS, S3,
  DynamoDB, the @connections pushes), as AgentCore measures and logs it per query. The
  end-to-end total against the ideal critical path of the simulated services is printed beside it.
- Time to first audio (receipt of the query to the first `audio` message pushed) against its
  goal: the first token, the first sentence's tokens and its speech, at the report's latencies
  (the transcript no longer comes first, so the first audio does not wait for it; issue 12).
- Time for N concurrent queries divided by the time for one, and against the ideal schedule on
  `--max-num-seqs` model slots (AgentCore's target: within 5 % of it, at any slot count).

`--latency-scale S` multiplies every simulated latency by S (and the decode rate by 1/S) so tests
can run the whole benchmark in seconds; the goals are stated for S = 1.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from synapscribe.cli_types import integer, number, positive_int
from synapscribe.platform import PlatformConfig, load_platform
from synapscribe_local import audiogen
from synapscribe_local.harness import AgentCoreRig, agentcore_rig
from synapscribe_local.standin.config import REPORT_LATENCY, Latency
from synapscribe_local.standin.tokens import CHARS_PER_TOKEN

TTS_LATENCY_SECONDS = 0.3
REPORT_END_TO_END_SECONDS = 8.2
#: AgentCore's own target: first audio, and a burst's wall time, within this fraction of the ideal.
WITHIN_IDEAL = 0.05
#: AgentCore's own CPU per question must stay under this (the overhead goal, issue 19).
OWN_CPU_GOAL_MS = 60.0
QUESTIONS = (
    "What does rubisco do in the Calvin cycle?",
    "Where does photosynthesis take place?",
    "What is released when water is split?",
    "What does the rate of photosynthesis depend on?",
    "Which energy carriers do the light reactions produce?",
    "What do plants make from the three carbon sugar?",
    "What is the overall equation of photosynthesis?",
    "Which pigment do chloroplasts contain?",
)
OWNER = "eu-west-1:bench-owner"


AUDIO_MODE_MINUTES = number(above=0, maximum=9, note="an audio-mode lecture")
LATENCY_SCALE = number(above=0, maximum=10)
#: AgentCore's own bound on SYNAPSCRIBE_MAX_NUM_SEQS (agentcore/settings.py).
SLOTS = integer(minimum=1, maximum=1024)
#: AgentCore's bound on SYNAPSCRIBE_QUEUE_TIMEOUT_SECONDS (agentcore/settings.py).
MAX_QUEUE_TIMEOUT_SECONDS = 600.0


def scaled_latency(scale: float) -> Latency:
    """The report's latencies times `scale` (the decode rate divided by it)."""
    r = REPORT_LATENCY
    return Latency(
        transcription_seconds=r.transcription_seconds * scale,
        first_token_seconds=r.first_token_seconds * scale,
        tokens_per_second=r.tokens_per_second / scale,
        answer_tokens=r.answer_tokens,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queries", type=positive_int, default=8, help="sequential voice queries (default 8)"
    )
    parser.add_argument("--concurrency", type=positive_int, default=8, help="concurrent queries (default 8)")
    parser.add_argument(
        "--max-num-seqs",
        type=SLOTS,
        default=None,
        help="model slots: the stand-in runs this many requests at once and AgentCore admits as "
        "many (default platform.yaml vllm.max_num_seqs)",
    )
    parser.add_argument(
        "--lecture-minutes", type=AUDIO_MODE_MINUTES, default=5.0, help="lecture length (default 5)"
    )
    parser.add_argument(
        "--latency-scale",
        type=LATENCY_SCALE,
        default=1.0,
        help="multiply the simulated model and TTS latencies by this (default 1: the report's; "
        "the goals hold at 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")


def one_query_seconds(*, transcription: float, answer: float, tts: float, slots: int) -> float:
    """One voice query alone: its transcription beside its answer, then the last sentence's
    speech; on a single slot the answer runs first (AgentCore asks for its slot first), then the
    transcription, which the final `answer` waits for."""
    if slots >= 2:
        return max(transcription, answer) + tts
    return answer + max(transcription, tts)


@dataclass(frozen=True)
class Inputs:
    """What the simulated services take (the report's constants times --latency-scale): inputs
    of the ideal figures, not measurements."""

    latency: Latency
    tts_seconds: float
    slots: int

    def first_audio(self, first_sentence_tokens: float) -> float:
        """The first audio's goal: first token, then the first sentence's tokens, then its speech."""
        lat = self.latency
        return lat.first_token_seconds + first_sentence_tokens / lat.tokens_per_second + self.tts_seconds

    def answer_seconds(self, text: str) -> float:
        """The simulated model's time for this answer: first token, then its tokens at the decode rate."""
        lat = self.latency
        return lat.first_token_seconds + len(text) / CHARS_PER_TOKEN / lat.tokens_per_second

    def typical_answer_seconds(self) -> float:
        lat = self.latency
        return lat.first_token_seconds + lat.answer_tokens / lat.tokens_per_second

    def one_query(self, answer: float) -> float:
        return one_query_seconds(
            transcription=self.latency.transcription_seconds,
            answer=answer,
            tts=self.tts_seconds,
            slots=self.slots,
        )


def _first_sentence_tokens(result: dict[str, Any]) -> float:
    """Tokens of the answer up to the end of its first spoken sentence."""
    text: str = result["answer"]["text"]
    first: str = result["firstSentence"]
    return (text.find(first) + len(first)) / CHARS_PER_TOKEN


@dataclass(frozen=True)
class ScheduleBounds:
    """Ideal times (no overhead at all) for `queries` voice queries at once on `slots` model slots.

    Every voice query is two model requests, a transcription (T) and an answer (A), and its last
    sentence is spoken (tts) after its answer ends; its final `answer` also waits for its
    transcript. The slots must do queries * (T + A) seconds of work, so no schedule ends before
    work = queries * (T + A) / slots, nor before the answers, in ceil(queries / slots) waves, and
    the last one's speech. `answers_first` (every slot runs its answers before its
    transcriptions) reaches that bound: the ideal. Since the contract lets the answer stream
    before its transcript (issue 12), clients hear their answers meanwhile. `transcripts_early`
    is a schedule that starts each transcription at once: then the last answers end last, and
    their speech follows the work: work + tts.
    """

    one: float
    answer: float
    answers_first: float
    transcripts_early: float

    @property
    def ideal(self) -> float:
        return self.answers_first

    @classmethod
    def compute(
        cls, *, queries: int, slots: int, transcription: float, answer: float, tts: float
    ) -> ScheduleBounds:
        one = one_query_seconds(transcription=transcription, answer=answer, tts=tts, slots=slots)
        work = queries * (transcription + answer) / slots
        waves = -(-queries // slots)
        answers_first = max(one, work, waves * answer + tts)
        return cls(
            one=one, answer=answer, answers_first=answers_first, transcripts_early=max(one, work + tts)
        )


def _ask(
    st: AgentCoreRig, session_id: str, connection_id: str, audio: bytes, timeout: float
) -> dict[str, Any]:
    sent = time.time()
    request_id = st.submit(OWNER, session_id, connection_id, audio=audio)
    got = st.receiver.wait_final(connection_id, request_id, timeout=timeout)
    final = got[-1].message
    if final["type"] != "answer":
        raise RuntimeError(f"query failed: {final}")
    first_audio = next((r.at for r in got if r.message["type"] == "audio"), None)
    first_sentence = next((r.message["text"] for r in got if r.message["type"] == "audio"), "")
    return {
        "requestId": request_id,
        "clientTotal": got[-1].at - sent,
        "clientFirstAudio": (first_audio - sent) if first_audio else None,
        "answer": final,
        "firstSentence": first_sentence,
    }


def _metrics_for(
    st: AgentCoreRig, request_ids: list[str], timeout: float = 10.0
) -> dict[str, dict[str, Any]]:
    """AgentCore's logged figures for these queries; it logs them just after pushing the answer,
    so the last ones may lag the answer by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = {m["requestId"]: m for m in st.agentcore.metrics()}
        if all(i in metrics for i in request_ids) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


@dataclass
class Runs:
    """What one benchmark run measured."""

    sequential: list[dict[str, Any]]
    concurrent: list[dict[str, Any] | Exception]
    concurrent_wall: float
    metrics: dict[str, dict[str, Any]]

    @property
    def failures(self) -> list[Exception]:
        return [r for r in self.concurrent if isinstance(r, Exception)]

    def metrics_of(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.metrics[r["requestId"]] for r in results if r["requestId"] in self.metrics]


def _burst(
    st: AgentCoreRig, lecture: dict[str, Any], clips: list[bytes], n: int, timeout: float
) -> tuple[list[Any], float]:
    """`n` queries at once from `n` clients; their results and the wall time until the last final."""
    sessions = [st.start_session(OWNER, lecture) for _ in range(n)]
    for i in range(n):  # connected before the clock starts, as clients are
        st.connect(f"bench-par-{i}", OWNER)
    results: list[dict[str, Any] | Exception] = [RuntimeError("not run")] * n

    def worker(i: int) -> None:
        try:
            results[i] = _ask(st, sessions[i], f"bench-par-{i}", clips[i % len(clips)], timeout)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.time() - started


def _measure(args: argparse.Namespace, inputs: Inputs, queue_timeout: float) -> Runs:
    lat = inputs.latency
    lecture_path = audiogen.cached_lecture(args.lecture_minutes)
    # Only the questions this run asks (each one is spoken once and cached).
    clips = [
        audiogen.cached_speech(q).read_bytes()
        for q in QUESTIONS[: min(len(QUESTIONS), max(args.queries, args.concurrency))]
    ]
    standin_args = [
        f"--transcription-seconds={lat.transcription_seconds}",
        f"--first-token-seconds={lat.first_token_seconds}",
        f"--tokens-per-second={lat.tokens_per_second}",
        f"--answer-tokens={lat.answer_tokens}",
        f"--max-num-seqs={inputs.slots}",
    ]
    agentcore_env = {
        "SYNAPSCRIBE_MAX_NUM_SEQS": str(inputs.slots),
        "SYNAPSCRIBE_QUEUE_TIMEOUT_SECONDS": f"{queue_timeout:g}",
    }
    wait = max(120.0, 2 * queue_timeout)
    with agentcore_rig(
        standin_args=standin_args,
        tts_env={"SYNAPSCRIBE_TTS_SIMULATED_LATENCY_MS": str(round(inputs.tts_seconds * 1000))},
        agentcore_env=agentcore_env,
    ) as st:
        lecture = st.put_lecture(OWNER, lecture_path)
        # Warm-up: cuts and stores the lecture's items, opens connection pools, and fills the TTS
        # cache with every answer's sentences, so TTS costs its simulated latency (the report's
        # 0.3 s) rather than espeak-ng's CPU on this machine, which the stand-in also needs.
        for i, clip in enumerate(clips):
            _ask(st, st.start_session(OWNER, lecture), f"bench-warm-{i}", clip, wait)

        sequential = []
        for i in range(args.queries):
            session_id = st.start_session(OWNER, lecture)
            st.connect(f"bench-seq-{i}", OWNER)
            sequential.append(_ask(st, session_id, f"bench-seq-{i}", clips[i % len(clips)], wait))

        results, wall = _burst(st, lecture, clips, args.concurrency, wait)
        ids = [r["requestId"] for r in [*sequential, *results] if isinstance(r, dict)]
        metrics = _metrics_for(st, ids)
    return Runs(sequential, results, wall, metrics)


def _queue_timeout(platform: PlatformConfig, inputs: Inputs, concurrency: int) -> float:
    """Long enough that no query of the burst gets `busy` (the benchmark measures the schedule,
    not the admission bound): twice the burst's slowest ideal schedule, never under the platform's."""
    bounds = ScheduleBounds.compute(
        queries=concurrency,
        slots=inputs.slots,
        transcription=inputs.latency.transcription_seconds,
        answer=inputs.typical_answer_seconds(),
        tts=inputs.tts_seconds,
    )
    wanted = max(platform.agentcore.queue_timeout_seconds, math.ceil(2 * bounds.transcripts_early))
    return min(MAX_QUEUE_TIMEOUT_SECONDS, wanted)


def _figures(args: argparse.Namespace, inputs: Inputs, runs: Runs, queue_timeout: float) -> dict[str, Any]:
    lat, tts_seconds = inputs.latency, inputs.tts_seconds
    sequential = runs.sequential
    seq_metrics = runs.metrics_of(sequential)
    par_metrics = runs.metrics_of([r for r in runs.concurrent if isinstance(r, dict)])
    own = [m["ownMs"] for m in seq_metrics]
    cpu = [m["processCpuMs"] for m in seq_metrics]
    first_audio = [r["answer"]["timings"]["firstAudioMs"] / 1000 for r in sequential]
    fa_goals = [inputs.first_audio(_first_sentence_tokens(r)) for r in sequential]
    answers = [inputs.answer_seconds(r["answer"]["text"]) for r in sequential]
    totals = [r["clientTotal"] for r in sequential]
    e2e_over = [(t - inputs.one_query(a)) * 1000 for t, a in zip(totals, answers, strict=True)]
    one = statistics.median(totals)
    bounds = ScheduleBounds.compute(
        queries=args.concurrency,
        slots=inputs.slots,
        transcription=lat.transcription_seconds,
        answer=statistics.median(answers),
        tts=tts_seconds,
    )
    wall = runs.concurrent_wall
    return {
        "latency_scale": args.latency_scale,
        "max_num_seqs": inputs.slots,
        "queue_timeout_s": queue_timeout,
        "sequential_queries": args.queries,
        "overhead_ms_median": statistics.median(own),
        "overhead_ms_max": max(own),
        "agentcore_cpu_ms_median": statistics.median(cpu),
        "agentcore_cpu_ms_max": max(cpu),
        # What the CPU scales with: the @connections pushes, the model's stream chunks read, and
        # the TTS requests (each with an S3 put) of one question.
        "pushes_per_query_median": statistics.median(m.get("calls", {}).get("push", 0) for m in seq_metrics),
        "answer_chunks_median": statistics.median(m.get("answerChunks", 0) for m in seq_metrics),
        "tts_calls_median": statistics.median(m.get("calls", {}).get("tts", 0) for m in seq_metrics),
        "end_to_end_minus_ideal_ms_median": statistics.median(e2e_over),
        "first_audio_s_median": statistics.median(first_audio),
        "first_audio_goal_s_median": statistics.median(fa_goals),
        "first_audio_over_goal_median": statistics.median(
            fa / goal for fa, goal in zip(first_audio, fa_goals, strict=True)
        ),
        "first_audio_minus_ideal_ms_median": statistics.median(
            (fa - goal) * 1000 for fa, goal in zip(first_audio, fa_goals, strict=True)
        ),
        "first_audio_after_first_token_ms_median": statistics.median(
            r["answer"]["timings"]["firstAudioMs"] - r["answer"]["timings"]["firstTokenMs"]
            for r in sequential
        ),
        "first_sentence_tokens_median": statistics.median(_first_sentence_tokens(r) for r in sequential),
        "one_query_s_median": one,
        "concurrent_queries": args.concurrency,
        "concurrent_wall_s": wall,
        "concurrency_ratio": wall / one,
        "ideal_one_query_s": bounds.one,
        "ideal_concurrent_s": bounds.ideal,
        "concurrent_over_ideal": wall / bounds.ideal,
        "ideal_concurrent_answers_first_s": bounds.answers_first,
        "ideal_concurrent_transcripts_early_s": bounds.transcripts_early,
        "concurrency_ratio_ideal_answers_first": bounds.answers_first / bounds.one,
        "concurrency_ratio_ideal_transcripts_early": bounds.transcripts_early / bounds.one,
        "concurrent_failures": len(runs.failures),
        "asr_ms_median": statistics.median(r["answer"]["timings"]["asrMs"] for r in sequential),
        "first_token_ms_median": statistics.median(
            r["answer"]["timings"]["firstTokenMs"] for r in sequential
        ),
        "concurrent_own_ms_median": statistics.median(m["ownMs"] for m in par_metrics),
        "concurrent_queries_detail": [
            {
                k: m.get(k)
                for k in (
                    "asrMs",
                    "firstTokenMs",
                    "firstAudioMs",
                    "totalMs",
                    "ownMs",
                    "processCpuMs",
                    "answerSentMs",
                    "answerFirstTokenMs",
                    "waits",
                )
            }
            for m in par_metrics
        ],
    }


def _ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def _print_overhead(f: dict[str, Any]) -> None:
    cpu = f["agentcore_cpu_ms_median"]
    print(
        f"  AgentCore CPU per query           median {cpu:.1f} ms (max {f['agentcore_cpu_ms_max']:.1f} ms)"
        f"  goal < {OWN_CPU_GOAL_MS:g} ms: {_ok(cpu < OWN_CPU_GOAL_MS)}"
    )
    print("    = process CPU time (all threads) of AgentCore while the query ran (each ran alone)")
    print(
        f"    per query: {f['pushes_per_query_median']:g} pushes, {f['answer_chunks_median']:g} answer "
        f"stream chunks read, {f['tts_calls_median']:g} TTS requests and S3 puts (medians)"
    )
    print(
        f"  AgentCore own time, waits excluded median {f['overhead_ms_median']:.2f} ms (max {f['overhead_ms_max']:.2f} ms)"
    )
    print("    = AgentCore's wall time per query minus its waits on the model, TTS, S3, DynamoDB and pushes")
    print(
        f"  end to end minus ideal            median {f['end_to_end_minus_ideal_ms_median']:.0f} ms (moto S3/DynamoDB, pushes and scheduling included)"
    )


def _print_first_audio(f: dict[str, Any], inputs: Inputs) -> None:
    lat = inputs.latency
    goal = f["first_audio_goal_s_median"]
    tokens = f["first_sentence_tokens_median"]
    good = f["first_audio_over_goal_median"] <= 1 + WITHIN_IDEAL
    print(
        f"  time to first audio               median {f['first_audio_s_median']:.2f} s  goal <= {goal:.2f} s "
        f"(within {WITHIN_IDEAL:.0%}; report: {REPORT_END_TO_END_SECONDS} s end to end): {_ok(good)}"
    )
    print(
        f"    goal = first token {lat.first_token_seconds:g} s + first sentence ({tokens:.0f} tokens at "
        f"{lat.tokens_per_second:g} tokens/s) {tokens / lat.tokens_per_second:.2f} s + its speech {inputs.tts_seconds:g} s"
    )
    print(
        "    inputs: the report's first token, decode rate and TTS time per sentence (x latency scale); "
        "the first sentence is the stand-in's"
    )
    print(
        f"    measured: transcript at {f['asr_ms_median']:.0f} ms, first token at {f['first_token_ms_median']:.0f} ms "
        f"(input {lat.first_token_seconds * 1000:.0f} ms; the rest is AgentCore's preparation and the stand-in reading "
        f"the request); first audio {f['first_audio_minus_ideal_ms_median']:.0f} ms after its goal, "
        f"{f['first_audio_after_first_token_ms_median']:.0f} ms after the first token (input "
        f"{(goal - lat.first_token_seconds) * 1000:.0f} ms); it does not wait for the transcript"
    )


def _print_concurrency(f: dict[str, Any], inputs: Inputs, bounds_answer: float, failures: int) -> None:
    n, slots = f["concurrent_queries"], inputs.slots
    ratio, over = f["concurrency_ratio"], f["concurrent_over_ideal"]
    print(f"  one query                         median {f['one_query_s_median']:.2f} s")
    print(
        f"  {n} concurrent queries              {f['concurrent_wall_s']:.2f} s, ratio {ratio:.2f}  goal <= 1.3: {_ok(ratio <= 1.3)}  ({failures} failed)"
    )
    print(
        f"    ideal, {slots} model slots, 2 requests per voice query (transcription "
        f"{inputs.latency.transcription_seconds:.2f} s, answer {bounds_answer:.2f} s), one query {f['ideal_one_query_s']:.2f} s:"
    )
    print(
        f"      {f['ideal_concurrent_s']:.2f} s (ratio {f['concurrency_ratio_ideal_answers_first']:.2f}) the ideal schedule "
        "(answers before transcriptions; clients hear answers before their transcripts)"
    )
    print(
        f"      {f['ideal_concurrent_transcripts_early_s']:.2f} s (ratio {f['concurrency_ratio_ideal_transcripts_early']:.2f}) "
        "when every transcription starts at once"
    )
    print(
        f"    AgentCore against the ideal: {f['concurrent_wall_s']:.2f} s / {f['ideal_concurrent_s']:.2f} s = "
        f"{over:.3f}  goal within {WITHIN_IDEAL:.0%}: {_ok(over <= 1 + WITHIN_IDEAL)}"
    )


def run(args: argparse.Namespace) -> int:
    platform = load_platform()
    scale = args.latency_scale
    slots = args.max_num_seqs or platform.vllm.max_num_seqs
    inputs = Inputs(scaled_latency(scale), TTS_LATENCY_SECONDS * scale, slots)
    queue_timeout = _queue_timeout(platform, inputs, args.concurrency)
    print(
        f"starting moto, @connections receiver, stand-in (report latencies x {scale:g}, {slots} slots), "
        f"TTS ({inputs.tts_seconds:g} s), AgentCore ...",
        file=sys.stderr,
    )
    runs = _measure(args, inputs, queue_timeout)
    figures = _figures(args, inputs, runs, queue_timeout)
    print(
        f"\nSynapScribe pipeline benchmark: {args.queries} sequential voice queries, then {args.concurrency} at once"
    )
    print(
        f"lecture {args.lecture_minutes:g} min (audio mode); stand-in at the report's latencies x {scale:g}; "
        f"TTS {inputs.tts_seconds:g} s/sentence; {slots} model slots (max_num_seqs), queue timeout {queue_timeout:g} s"
    )
    if scale != 1:
        print(f"(latencies scaled by {scale:g}: the goals below are stated for --latency-scale 1)")
    print("(after one warm-up query per question: lecture items stored, TTS cache filled)")
    _print_overhead(figures)
    _print_first_audio(figures, inputs)
    answer = statistics.median(inputs.answer_seconds(r["answer"]["text"]) for r in runs.sequential)
    _print_concurrency(figures, inputs, answer, len(runs.failures))
    if args.json:
        print(json.dumps(figures, indent=2))
    for failure in runs.failures:
        print(f"  failure: {failure}", file=sys.stderr)
    return 1 if runs.failures else 0
