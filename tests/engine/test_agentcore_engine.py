"""AgentCore against the real vLLM engine (CPU build, the tiny random-weight model), end to end through
the local stack (`synapscribe local` with VLLM_BASE_URL and VLLM_MODEL at the engine): `/ready`
against the engine's own `/v1/models`; a short lecture in audio mode asked a voice question, a text
question and a follow-up, the follow-up measured as prefix-cache hits on vLLM's own `/metrics`; a
25-minute lecture in transcript mode; and the smoke test in its mode for a model whose words mean
nothing. The model's words are random: no test asserts what an answer says.

One stack serves the module. The slow inputs (generated lecture audio) come from audiogen's cache.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack_uploads import upload_file
from synapscribe import planner
from synapscribe.contract import Lecture
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.bench.vllm_metrics import parse_metrics
from synapscribe_ops.smoke.checks import said_nothing, stream_problems
from synapscribe_ops.smoke.client import QueryResult, StackClient

pytestmark = [
    pytest.mark.engine,
    pytest.mark.timeout(900),
    pytest.mark.needs_tool("espeak-ng", "sox", "ffmpeg"),
]

VOICE_QUESTION = "Where does photosynthesis take place in the plant?"
TEXT_QUESTION = "What does the enzyme rubisco do in the Calvin cycle?"
FOLLOW_UP = "Could you say that again more simply?"
TRANSCRIPT_MINUTES = 25


def engine_root(engine: Any) -> str:
    """The engine's server root (`http://127.0.0.1:PORT`), whether base_url ends in /v1 or not."""
    return str(engine.base_url).rstrip("/").removesuffix("/v1")


def engine_counters(engine: Any) -> dict[str, float]:
    response = httpx.get(engine_root(engine) + "/metrics", timeout=10)
    response.raise_for_status()
    return parse_metrics(response.text)


@pytest.fixture(scope="module")
def stack(engine: Any) -> Iterator[LocalStackProcess]:
    env = {
        "VLLM_BASE_URL": engine_root(engine) + "/v1",
        "VLLM_MODEL": engine.model,
        # The CPU engine runs AgentCore's concurrent transcriptions (60 s of audio each) on two cores:
        # each takes longer than a GPU host's answer may (agentcore.upstream_timeout_seconds).
        "SYNAPSCRIBE_UPSTREAM_TIMEOUT_SECONDS": "120",
    }
    with LocalStackProcess(env=env, ready_timeout=120) as running:
        assert "standin" not in running.info["pids"], "the stack must use the real engine, not the stand-in"
        yield running


def _lecture_of(lecture_id: str) -> Any:
    return lambda r: bool(r.type == "lecture" and r.data and r.data.get("lectureId") == lecture_id)


async def upload_lecture(client: StackClient, path: Path, within: float) -> tuple[Lecture, list[str], float]:
    """Upload `path` as a lecture; its final `lecture` message, the statuses seen, seconds to ready."""
    data = await asyncio.to_thread(path.read_bytes)
    lecture_id = (await upload_file(client, data, path.name)).uploadId
    started = time.monotonic()
    statuses: list[str] = []
    while True:
        push = await client.wait_for(_lecture_of(lecture_id), within=within, what="a lecture push")
        assert isinstance(push.message, Lecture), push.raw
        statuses.append(push.message.status)
        if push.message.status in ("ready", "rejected"):
            return push.message, statuses, time.monotonic() - started


async def start_session(client: StackClient, lecture_id: str) -> str:
    got = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
    assert got.data is not None and got.type == "session", got.raw
    return str(got.data["sessionId"])


#: The random model says nothing at all for about one question in four (its first token is one of
#: its end tokens); such a question is asked again, up to this many times, until an answer has words.
TRIES = 6


async def ask(
    client: StackClient, session_id: str, *, voice_input: bool, voice_output: bool, **fields: Any
) -> QueryResult:
    """Ask until the answer has words; every try must hold the contract's order and end in an answer
    (an answer with no words only excuses its missing text, deltas and speech)."""
    for _ in range(TRIES):
        result = await client.query(session_id, within=120, voice=voice_output, **fields)
        assert not result.timed_out, [m.raw for m in result.messages]
        assert result.error is None, f"{result.error.code}: {result.error.message}" if result.error else ""
        problems = stream_problems(
            result, voice_input=voice_input, voice_output=voice_output, allow_empty=True
        )
        assert problems == [], problems
        if not said_nothing(result):
            return result
    raise AssertionError(f"no answer with words in {TRIES} tries")


def test_ready_answers_from_the_engines_model_list(stack: LocalStackProcess, engine: Any) -> None:
    agentcore = stack.info["services"]["agentcore"]
    response = httpx.get(agentcore + "/ready", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"ready": True, "model": engine.model}
    served = httpx.get(engine_root(engine) + "/v1/models", timeout=10).json()
    assert engine.model in [m["id"] for m in served["data"]]


async def test_audio_mode_voice_text_and_a_follow_up_that_hits_the_prefix_cache(
    stack: LocalStackProcess, engine: Any, spoken_audio: Any, lecture_audio: Any
) -> None:
    lecture_path = lecture_audio(1.0)
    clip = spoken_audio(VOICE_QUESTION).read_bytes()
    async with await StackClient.connect(stack.url, identity="engine-student") as client:
        lecture, statuses, _ = await upload_lecture(client, lecture_path, within=120)
        assert lecture.status == "ready" and lecture.contextMode == "audio", (statuses, lecture.reason)
        session_id = await start_session(client, lecture.lectureId)

        audio = base64.b64encode(clip).decode("ascii")
        voice = await ask(client, session_id, voice_input=True, voice_output=True, audio=audio)
        assert voice.transcript is not None and voice.transcript.strip()
        assert voice.answer is not None and voice.answer.audio  # spoken

        await ask(client, session_id, voice_input=False, voice_output=True, text=TEXT_QUESTION)

        # The follow-up, measured on its own (nothing else runs on the engine meanwhile); whether
        # the model says anything does not matter here: the prompt is what the cache serves.
        before = engine_counters(engine)
        follow = await client.query(session_id, within=120, voice=False, text=FOLLOW_UP)
        after = _settled(engine, before)
        assert follow.answer is not None, [m.raw for m in follow.messages]
        problems = stream_problems(follow, voice_input=False, voice_output=False, allow_empty=True)
        assert problems == [], problems

    hits = after["vllm:prefix_cache_hits_total"] - before["vllm:prefix_cache_hits_total"]
    queried = after["vllm:prefix_cache_queries_total"] - before["vllm:prefix_cache_queries_total"]
    # The follow-up re-sends the system prompt, the lecture's items (byte for byte) and the earlier
    # turns: all of that is a prefix the engine computed for the text question just before.
    lecture_tokens = sum(
        planner.audio_item_tokens(end - start) for start, end in _items(lecture.durationSeconds or 60.0)
    )
    print(
        f"\nfollow-up on a {lecture.durationSeconds:.0f} s audio-mode lecture: vllm:prefix_cache_hits_total "
        f"+{hits:.0f} of +{queried:.0f} tokens queried ({hits / queried:.1%}); the lecture is about "
        f"{lecture_tokens} tokens"
    )
    assert hits >= 0.9 * lecture_tokens, (hits, queried, lecture_tokens)
    assert hits >= 0.8 * queried, (hits, queried)


def _items(seconds: float) -> list[tuple[float, float]]:
    from synapscribe.agentcore.media import item_bounds

    return item_bounds(seconds, load_platform().audio.max_item_seconds)


def _settled(engine: Any, before: dict[str, float], wait: float = 3.0) -> dict[str, float]:
    """/metrics once the last request's prefix-cache query is counted (vLLM updates it per step)."""
    deadline = time.monotonic() + wait
    while True:
        after = engine_counters(engine)
        if (
            after["vllm:prefix_cache_queries_total"] > before["vllm:prefix_cache_queries_total"]
            or time.monotonic() > deadline
        ):
            return after
        time.sleep(0.1)


async def test_a_25_minute_lecture_is_transcribed_and_answered_in_transcript_mode(
    stack: LocalStackProcess, lecture_audio: Any
) -> None:
    path = lecture_audio(TRANSCRIPT_MINUTES)
    assert audiogen.duration_seconds(path) > load_platform().max_audio_lecture_seconds
    async with await StackClient.connect(stack.url, identity="engine-transcript") as client:
        lecture, statuses, seconds = await upload_lecture(client, path, within=600)
        print(f"\n{TRANSCRIPT_MINUTES}-minute lecture: {' -> '.join(statuses)} in {seconds:.1f} s")
        assert statuses[-1] == "ready", (statuses, lecture.reason)
        assert "transcribing" in statuses and lecture.contextMode == "transcript"
        session_id = await start_session(client, lecture.lectureId)
        await ask(client, session_id, voice_input=False, voice_output=False, text=TEXT_QUESTION)
    log = (stack.workdir / "logs" / "agentcore.log").read_text()
    assert log.count(f"lecture {lecture.lectureId}: transcribed ") == 1, log[-3000:]


def test_the_smoke_test_passes_with_its_word_checks_skipped(stack: LocalStackProcess, tmp_path: Path) -> None:
    report_path = tmp_path / "smoke.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "synapscribe.cli",
            "smoke",
            "--url",
            stack.url,
            "--model-words",
            "meaningless",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED:" in done.stdout and "follow-up recalls the codeword" in done.stdout
    report = json.loads(report_path.read_text())
    assert report["ok"] is True and report["modelWords"] == "meaningless"
    skipped = report["skippedChecks"]
    assert [s for s in skipped if s.startswith("follow-up recalls the codeword:")], skipped
    # Any other skip is a try the model answered with no words (asked again, listed).
    assert all("said nothing" in s for s in skipped if not s.startswith("follow-up recalls the codeword:")), (
        skipped
    )
    kinds = [t["kind"] for t in report["conversation"]]
    assert list(dict.fromkeys(kinds)) == ["voice", "text", "follow-up"], kinds
    assert all(t["answer"] is not None and t["error"] is None for t in report["conversation"])
    voice = [t for t in report["conversation"] if t["kind"] == "voice"]
    assert voice[-1]["audio"] > 0  # a spoken answer, its MP3 fetched and checked
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["every message matches the contract"]["ok"]
    assert "word check skipped" in steps["follow-up question (needs the earlier turn)"]["detail"]
