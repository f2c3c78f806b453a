"""`synapscribe bench engine`: what an audio-mode turn costs on a running vLLM, by how its items travel.

In audio mode every turn re-sends the whole lecture. For each transport of the lecture's items this
asks a few turns of one conversation, exactly as AgentCore builds them (system prompt, the lecture
as items of at most `audio.max_item_seconds`, the history, the question), and measures per turn:
the bytes of the request, the time to the first token (turn 1 cold, on a lecture the server has
never seen; later turns re-send the same items, as follow-ups do), vLLM's own prefix-cache and
multimodal-cache counters (`/metrics`) and the prompt tokens it counted. Then the planner's token
estimates (synapscribe.planner) beside the engine's counts (`/tokenize`, `usage.prompt_tokens`).

Transports:
- `base64`: `input_audio` parts with the item's bytes in base64 and no uuid (vLLM hashes their content).
- `uuid`: what AgentCore sends (agentcore/media_refs.py): turn 1 the items' data with their uuids,
  later turns the uuids alone (`"input_audio": null`).
- `miss`: the uuids alone on a server that does not hold them (as after a restart): turn 1 is
  refused (HTTP 400, "Cache miss ...") and sent again with the data, as AgentCore does; its bytes
  and first token count both requests. Later turns as `uuid`.
- `file://`: `audio_url` parts naming the item as a file on the server's host; vLLM reads only files
  under its `--allowed-local-media-path`, so this needs the server started with that flag and
  `--media-dir` naming a directory under it (the items are written there). Without `--media-dir`
  the transport is skipped and the output says why.

`synapscribe bench engine --url http://127.0.0.1:8000 [--model NAME] [--media-dir DIR]`.
Exit status 0 when every turn was answered, 1 when one failed, 2 for bad flags.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from synapscribe import planner
from synapscribe.agentcore import prompts
from synapscribe.agentcore.media import cut_mp3, duration_seconds, mp3_samples
from synapscribe.agentcore.media_refs import item_uuid
from synapscribe.cli_types import integer, number, positive_float, positive_int
from synapscribe.platform import load_platform
from synapscribe_local import audiogen

from synapscribe_ops.bench.vllm_server import (
    COUNTERS,
    MM_HITS,
    MM_QUERIES,
    PREFIX_HITS,
    CacheMissError,
    Engine,
    EngineBenchError,
)

BASE64 = "base64"
UUID = "uuid"
MISS = "miss"
FILE = "file://"
TRANSPORTS = (BASE64, UUID, MISS, FILE)
#: Transports whose items carry their uuid (agentcore/media_refs.py).
BY_UUID = (UUID, MISS)
QUESTIONS = (
    "What does the enzyme rubisco do in the Calvin cycle?",
    "Could you say that again more simply, in one sentence?",
    "And where in the cell does that happen?",
    "What does the rate of photosynthesis depend on?",
)

LECTURE_SECONDS = number(above=0, maximum=600, note="an audio-mode lecture")
MAX_TOKENS = integer(minimum=1, maximum=4096)


@dataclass
class Turn:
    transport: str
    turn: int
    request_bytes: int
    ttft_ms: float
    total_ms: float
    prompt_tokens: int | None
    planner_bound: int
    planner_exact: int
    prefix_hits: float | None
    mm_queried: float | None
    mm_hits: float | None
    answer: str

    @property
    def hit_share(self) -> float | None:
        if self.prefix_hits is None or not self.prompt_tokens:
            return None
        return self.prefix_hits / self.prompt_tokens


@dataclass
class AudioCount:
    transport: str
    items: int
    seconds: float
    planner: int  # the planner's count of the items as AgentCore sends them (exact: their samples)
    planner_bound: int  # its upper bound from the items' seconds (for items of unknown samples)
    engine: int  # /tokenize of the lecture message minus the same message without its audio parts


@dataclass
class Report:
    url: str
    model: str
    max_model_len: int | None
    lecture_seconds: float
    items: int
    turns: list[Turn] = field(default_factory=list)
    audio: list[AudioCount] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for t, td in zip(self.turns, data["turns"], strict=True):
            td["hitShare"] = t.hit_share
        return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", required=True, help="the vLLM server: http://127.0.0.1:PORT (with or without /v1)"
    )
    parser.add_argument("--model", help="the served model name (default: the first one on /v1/models)")
    parser.add_argument("--api-key", help="vLLM's --api-key, when it was started with one")
    parser.add_argument(
        "--lecture-seconds",
        type=LECTURE_SECONDS,
        default=180.0,
        help="length of the generated lecture (default 180: three 60 s items)",
    )
    parser.add_argument(
        "--turns",
        type=positive_int,
        default=3,
        help=f"turns per transport: the first cold, the rest follow-ups (default 3, at most {len(QUESTIONS)})",
    )
    parser.add_argument(
        "--media-dir",
        type=Path,
        help="a directory under the server's --allowed-local-media-path: the file:// transport writes its "
        "items there (without it, file:// is skipped)",
    )
    parser.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help=f"which transports to measure, comma-separated (default {','.join(TRANSPORTS)})",
    )
    parser.add_argument(
        "--max-tokens", type=MAX_TOKENS, default=32, help="answer length per turn (default 32)"
    )
    parser.add_argument("--timeout", type=positive_float, default=300.0, help="seconds per request")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures here as JSON")


def _fail(message: str) -> int:
    print(f"synapscribe bench engine: error: {message}", file=sys.stderr)
    return 2


def _check_args(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The transports to measure, or an error naming the flag."""
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [], f"--url must be an http(s) URL of the vLLM server, not {args.url!r}"
    chosen = [t.strip() for t in str(args.transports).split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TRANSPORTS]
    if not chosen or unknown:
        return [], f"--transports: {', '.join(unknown) or 'none given'}; choose from {', '.join(TRANSPORTS)}"
    if args.turns > len(QUESTIONS):
        return [], f"--turns: at most {len(QUESTIONS)}"
    if args.media_dir is not None and not args.media_dir.is_dir():
        return [], f"--media-dir: no such directory: {args.media_dir}"
    return chosen, None


# --------------------------------------------------------------------------------------------
# the lecture and the requests, as AgentCore builds them


@dataclass(frozen=True)
class Item:
    start: float
    end: float  # start + the item's full seconds (its lead frames included)
    data: bytes
    samples: tuple[int, int]  # (decoded samples, sample rate), as AgentCore's items carry them


def make_items(workdir: Path, seconds: float, tag: str) -> list[Item]:
    """A generated lecture no server has seen (its last sentence names `tag`), cut as AgentCore cuts it."""
    path = workdir / f"lecture-{tag}.mp3"
    sentences = (*audiogen.DEFAULT_LECTURE, f"This recording is engine benchmark lecture {tag}.")
    audiogen.make_lecture(path, seconds / 60, "mp3", sentences=sentences)
    data = path.read_bytes()
    cut = cut_mp3(data, load_platform().audio.max_item_seconds, audiogen.embedded_timeline(data))
    items = []
    for c in cut:
        # The longer of the cut span and the decoder's view, as AgentCore counts an item.
        length = max(c.end - c.start, duration_seconds(c.data, "mp3"))
        items.append(Item(c.start, c.start + length, c.data, mp3_samples(c.data)))
    return items


def file_audio_part(path: Path, item: Item) -> dict[str, Any]:
    rate = {"_samples": item.samples[0], "_rate": item.samples[1]}
    return {
        "type": "audio_url",
        "audio_url": {"url": path.resolve().as_uri()},
        "_seconds": item.end - item.start,
        **rate,
    }


def lecture_message(
    items: Sequence[Item], transport: str, media_dir: Path | None, tag: str, by_reference: bool = False
) -> dict[str, Any]:
    import base64

    message = prompts.lecture_audio_message(
        [
            prompts.LectureAudioItem(
                i.start,
                i.end,
                base64.b64encode(i.data).decode("ascii"),
                "mp3",
                i.samples,
                item_uuid(tag, n, i.data) if transport in BY_UUID else None,
            )
            for n, i in enumerate(items)
        ],
        by_reference=by_reference,
    )
    if transport != FILE:
        return message
    assert media_dir is not None
    audio = iter(items)
    content = []
    for n, part in enumerate(message["content"]):
        if part["type"] != "input_audio":
            content.append(part)
            continue
        item = next(audio)
        path = media_dir / f"synapscribe-bench-{tag}-{n:03d}.mp3"
        path.write_bytes(item.data)
        content.append(file_audio_part(path, item))
    return {**message, "content": content}


def without_audio(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "content": [p for p in message["content"] if p["type"] == "text"]}


def planner_tokens(messages: Sequence[dict[str, Any]], text_tokens: Callable[[str], int]) -> int:
    """The planner's count of a request, as AgentCore's budget makes it."""
    p = load_platform()
    return planner.GENERATION_PROMPT_TOKENS + sum(
        planner.estimate_message_tokens(m, p, text_tokens) for m in messages
    )


# --------------------------------------------------------------------------------------------
# the run


class Run:
    def __init__(self, engine: Engine, model: str, args: argparse.Namespace, report: Report) -> None:
        self.engine = engine
        self.model = model
        self.args = args
        self.report = report
        self._exact: dict[str, int] = {}

    def exact_text(self, text: str) -> int:
        """A text's tokens by the server's tokenizer (what AgentCore's exact count asks /tokenize)."""
        if text not in self._exact:
            body = {"model": self.model, "prompt": text, "add_special_tokens": False}
            count = self.engine._post("/tokenize", json.dumps(body).encode()).json().get("count")
            self._exact[text] = int(count) if isinstance(count, int) else 0
        return self._exact[text]

    def _body(self, messages: list[dict[str, Any]]) -> bytes:
        return json.dumps(
            {
                "model": self.model,
                "messages": prompts.wire_messages(messages),
                "max_tokens": self.args.max_tokens,
                "temperature": 0.2,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()

    def _send(self, transport: str, n: int, request: Callable[[bool], bytes]) -> tuple[int, Any]:
        """The turn's bytes sent and what Engine.stream returned: by reference after turn 1 (uuid)
        or always (miss), resent once with the data on the server's cache-miss refusal."""
        by_reference = transport == MISS or (transport == UUID and n > 1)
        body = request(by_reference)
        started = time.perf_counter()
        try:
            return len(body), self.engine.stream(body)
        except CacheMissError:
            if not by_reference:
                raise
        again = request(False)
        ttft, total, prompt_tokens, answer = self.engine.stream(again)
        waited = (time.perf_counter() - started) * 1000 - total  # the refused request's round trip
        return len(body) + len(again), (ttft + waited, total + waited, prompt_tokens, answer)

    def transport(self, transport: str, workdir: Path, media_dir: Path | None) -> None:
        tag = f"{'file' if transport == FILE else transport}-{uuid.uuid4().hex[:8]}"
        items = make_items(workdir, self.args.lecture_seconds, tag)
        self.report.items = len(items)
        lecture = lecture_message(items, transport, media_dir, tag)
        by_ref = (
            lecture_message(items, transport, media_dir, tag, by_reference=True)
            if transport in BY_UUID
            else lecture
        )
        if transport != MISS:  # /tokenize would give the server the items the miss path must not have
            self.audio_count(transport, lecture, items)
        history: list[dict[str, Any]] = []
        for n, question in enumerate(QUESTIONS[: self.args.turns], start=1):
            asked = [*history, prompts.question_message(text=question)]
            messages = [*prompts.lecture_messages(lecture), *asked]

            def request(reference: bool, asked: list[dict[str, Any]] = asked) -> bytes:
                return self._body([*prompts.lecture_messages(by_ref if reference else lecture), *asked])

            before = self.engine.counters()
            sent, (ttft, total, prompt_tokens, answer) = self._send(transport, n, request)
            after = self.engine.counters_after(before, prompt_tokens)
            delta = {
                name: after.get(name, 0.0) - before.get(name, 0.0) if name in after else None
                for name in COUNTERS
            }
            self.report.turns.append(
                Turn(
                    transport=transport,
                    turn=n,
                    request_bytes=sent,
                    ttft_ms=round(ttft, 1),
                    total_ms=round(total, 1),
                    prompt_tokens=prompt_tokens,
                    planner_bound=planner_tokens(messages, planner.estimate_text_tokens),
                    planner_exact=planner_tokens(messages, self.exact_text),
                    prefix_hits=delta[PREFIX_HITS],
                    mm_queried=delta[MM_QUERIES],
                    mm_hits=delta[MM_HITS],
                    answer=answer,
                )
            )
            history += prompts.turn_messages({"question": question, "answer": answer.strip()})

    def audio_count(self, transport: str, lecture: dict[str, Any], items: Sequence[Item]) -> None:
        with_audio = self.engine.tokenize(self.model, [lecture])
        text_only = self.engine.tokenize(self.model, [without_audio(lecture)])
        p = load_platform()
        parts = [part for part in lecture["content"] if part["type"] != "text"]
        self.report.audio.append(
            AudioCount(
                transport=transport,
                items=len(items),
                seconds=round(sum(i.end - i.start for i in items), 3),
                planner=sum(planner.audio_part_tokens(part, p) for part in parts),
                # Each item's full seconds (its lead frames included), as AgentCore's items carry them.
                planner_bound=sum(planner.audio_item_tokens(i.end - i.start, p) for i in items),
                engine=with_audio - text_only,
            )
        )


def run(args: argparse.Namespace) -> int:
    transports, problem = _check_args(args)
    if problem:
        return _fail(problem)
    engine = Engine(args.url, args.api_key, args.timeout)
    try:
        return _run(engine, args, transports)
    except EngineBenchError as exc:
        print(f"synapscribe bench engine: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()


def _run(engine: Engine, args: argparse.Namespace, transports: list[str]) -> int:
    models = engine.models()
    names = [str(m.get("id")) for m in models]
    model = args.model or (names[0] if names else None)
    if model is None or model not in names:
        raise EngineBenchError(
            f"model {model!r} is not served at {engine.root} (it serves {', '.join(names) or 'none'})"
        )
    max_len = next((m.get("max_model_len") for m in models if m.get("id") == model), None)
    report = Report(
        engine.root, model, max_len if isinstance(max_len, int) else None, args.lecture_seconds, 0
    )
    bench = Run(engine, model, args, report)
    with tempfile.TemporaryDirectory(prefix="synapscribe-bench-engine-") as tmp:
        for transport in transports:
            if transport == FILE and args.media_dir is None:
                report.skipped[transport] = (
                    "no --media-dir: start vLLM with --allowed-local-media-path DIR and pass --media-dir DIR "
                    "(or a directory under it)"
                )
                continue
            try:
                bench.transport(transport, Path(tmp), args.media_dir)
            except EngineBenchError as exc:
                report.failures.append(f"{transport}: {exc}")
    print(format_report(report))
    if args.json_path:
        args.json_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return 1 if report.failures or not report.turns else 0


# --------------------------------------------------------------------------------------------
# the table


def _n(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: Report) -> str:
    lines = [
        f"bench engine: vLLM at {report.url}, model {report.model} (max_model_len {report.max_model_len or '?'}); "
        f"lecture {report.lecture_seconds:g} s in {report.items} item(s), as AgentCore sends it in audio mode",
        "",
        f"{'transport':<9} {'turn':<16} {'bytes sent':>11} {'TTFT ms':>9} {'total ms':>9} {'prompt tok':>10} "
        f"{'prefix hits':>11} {'hit %':>6} {'mm hits':>8} {'planner bound':>13} {'planner exact':>13}",
    ]
    for t in report.turns:
        label = f"{t.turn} (cold)" if t.turn == 1 else f"{t.turn} (follow-up)"
        if t.turn == 1 and t.transport == MISS:
            label = "1 (miss, resent)"
        mm = "-" if t.mm_hits is None else f"{t.mm_hits:.0f}/{t.mm_queried or 0:.0f}"
        lines.append(
            f"{t.transport:<9} {label:<16} {t.request_bytes:>11,} {t.ttft_ms:>9,.0f} {t.total_ms:>9,.0f} "
            f"{_n(t.prompt_tokens):>10} {_n(t.prefix_hits):>11} {_n(t.hit_share and t.hit_share * 100, '.1f'):>6} "
            f"{mm:>8} {t.planner_bound:>13,} {t.planner_exact:>13,}"
        )
    lines += [
        "",
        "  bytes sent: the JSON body of the chat completion (the lecture's items, the history, the question).",
        "  TTFT: from sending the request to the first streamed token, on this server; total: to the last chunk.",
        "  prompt tok: the engine's usage.prompt_tokens. prefix hits: rise of vllm:prefix_cache_hits_total "
        "(tokens, whole blocks) during the turn; hit %: of the prompt tokens.",
        "  mm hits: rise of vllm:mm_cache_hits_total / mm_cache_queries_total (audio items served from the "
        "multimodal processor cache, not decoded again).",
        "  planner bound: AgentCore's first count (text at one token per UTF-8 byte, audio from each item's "
        "decoded samples as the engine counts it); planner exact: the same with the texts counted by /tokenize.",
    ]
    if report.audio:
        lines += [
            "",
            f"{'audio tokens':<22} {'items':>5} {'seconds':>8} {'planner':>8} {'engine':>7} {'equal':>5} "
            f"{'bound':>7}",
        ]
        for a in report.audio:
            lines.append(
                f"{a.transport:<22} {a.items:>5} {a.seconds:>8.2f} {a.planner:>8,} {a.engine:>7,} "
                f"{'yes' if a.planner == a.engine else 'NO':>5} {a.planner_bound:>7,}"
            )
        lines.append(
            "  planner: its count of the items as AgentCore sends them, from each item's decoded samples "
            "(synapscribe.audio_tokens, <|audio_bos|>/<|audio_eos|> included); engine: /tokenize of the lecture "
            "message minus the same message without its audio parts; bound: the planner's upper bound from the "
            "items' seconds, used for audio of unknown sample count (a voice question)."
        )
    lines += _comparison(report)
    for transport, why in report.skipped.items():
        lines.append(f"skipped {transport}: {why}")
    for failure in report.failures:
        lines.append(f"FAILED {failure}")
    return "\n".join(lines)


def _comparison(report: Report) -> list[str]:
    by: dict[str, list[Turn]] = {}
    for t in report.turns:
        by.setdefault(t.transport, []).append(t)
    if len(by) < 2:
        return []
    lines = ["", "per follow-up turn (median of turns 2+):"]
    for transport, turns in by.items():
        warm = [t for t in turns if t.turn > 1] or turns
        lines.append(
            f"  {transport:<8} {statistics.median(t.request_bytes for t in warm):>11,.0f} bytes, "
            f"TTFT {statistics.median(t.ttft_ms for t in warm):,.0f} ms"
        )
    return lines
