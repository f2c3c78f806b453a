"""A student's visit to the page, scripted in a real browser (the browser test and the demo).

Upload a lecture, wait until it is ready, ask by voice (push to talk on Chromium's fake
microphone), ask by text, ask a follow-up, upload a file that is not audio, lose the connection
(the server closes it, as API Gateway's DeleteConnection does) and ask again once the page has
reconnected; then a screenshot of the conversation. What the page showed is returned for checks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
from boto3.dynamodb.conditions import Attr

from synapscribe import audiogen
from synapscribe.local.aws import LOCAL_CREDENTIALS, LOCAL_RESOURCES
from synapscribe.local.browser import Page, chromium_page

VOICE_QUESTION = "What is the main idea of this lecture?"
STOPPED_QUESTION = "Tell me everything about the lecture, slowly."
TEXT_QUESTION = "Which example does the lecture give?"
FOLLOW_UP = "Can you say that again more simply?"
AFTER_RECONNECT = "Thank you. One more: how does it end?"
#: Recorded this long, a question is over API Gateway's 32 KB frame at the page's bit rate.
LONG_QUESTION_SECONDS = 13.0

#: Every turn of the conversation, as the page shows it.
TURNS_JS = """[...document.querySelectorAll('.turn')].map(t => ({
  requestId: t.dataset.requestId, kind: t.dataset.kind, state: t.dataset.state || '',
  transport: t.dataset.transport || '', question: t.querySelector('.question').textContent,
  transcript: t.querySelector('.transcript').hidden ? null : t.querySelector('.transcript').textContent,
  answer: t.querySelector('.answer').textContent,
  status: t.querySelector('.status').textContent,
  error: t.querySelector('.error').hidden ? null : t.querySelector('.error').textContent,
  sentences: [...t.querySelectorAll('.sentences li')].map(li => ({seq: Number(li.dataset.seq), state: li.dataset.state || ''}))
}))"""


@dataclass
class TourResult:
    lecture_status: str = ""
    upload_progress: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)
    play_log: list[dict[str, Any]] = field(default_factory=list)
    not_audio_notice: str = ""
    rejected_status: str = ""
    reconnect_states: list[str] = field(default_factory=list)
    #: performance.now() on the page when talk was pressed over a spoken answer (barge-in), and
    #: when "Speak the answers" was unticked.
    barge_in_at: float = 0.0
    speech_off_at: float = 0.0
    stop_hidden_after: bool = False
    recorded_type: str = ""
    screenshot: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)


def question_wav(directory: Path) -> Path:
    """The fake microphone's input: the spoken voice question (WAV, as Chromium wants it)."""
    return audiogen.speak(VOICE_QUESTION, directory / "question.wav", "wav").path


def drop_connections(info: dict[str, Any], owner: str) -> int:
    """Close every connection of `owner` from the server side, the way the platform's own code
    can (`DeleteConnection` on the `@connections` API); how many were closed."""
    table = boto3.resource(
        "dynamodb",
        endpoint_url=info["awsEndpoint"],
        region_name=info["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).Table(LOCAL_RESOURCES["SYNAPSCRIBE_CONNECTIONS_TABLE"])
    items = table.scan(FilterExpression=Attr("owner").eq(owner))["Items"]
    closed = 0
    for item in items:
        url = f"{info['connectionsEndpoint']}/@connections/{quote(str(item['connectionId']), safe='')}"
        closed += httpx.delete(url, timeout=10).status_code == 204
    return closed


async def _ask_text(page: Page, text: str, within: float) -> dict[str, Any]:
    count = await page.evaluate("document.querySelectorAll('.turn').length")
    await page.type_text("#question", text)
    await page.click("#send")
    return await _answered(page, count, within)


async def _answered(page: Page, index: int, within: float) -> dict[str, Any]:
    """Turn `index` once it has its answer (or an error)."""
    await page.wait_for(
        f"(() => {{ const t = document.querySelectorAll('.turn')[{index}];"
        " return t && ['answered', 'stopped', 'error'].includes(t.dataset.state); })()",
        within,
        f"the answer to question {index + 1}",
    )
    turns: list[dict[str, Any]] = await page.evaluate(TURNS_JS)
    return turns[index]


async def _upload_lecture(page: Page, lecture: Path, result: TourResult, within: float) -> None:
    await page.wait_for("document.querySelector('#connection').dataset.state === 'open'", 15, "Connected")
    await page.set_file("#file", lecture)
    result.lecture_status = await page.wait_for(
        "(() => { const s = document.querySelector('#lecture-status');"
        " return ['ready', 'rejected'].includes(s.dataset.status) && !document.querySelector('#ask').hidden"
        " ? s.textContent : ''; })()",
        within,
        "the lecture as ready",
    )
    result.upload_progress = await page.evaluate("document.querySelector('#upload-progress').value")


async def _ask_voice(page: Page, speech_seconds: float, within: float) -> dict[str, Any]:
    count = await page.evaluate("document.querySelectorAll('.turn').length")
    await page.press("#talk")
    await page.wait_for("document.querySelector('#talk').dataset.state === 'recording'", 10, "recording")
    await asyncio.sleep(speech_seconds)
    await page.release("#talk")
    return await _answered(page, count, within)


async def _playing(page: Page, request_id: str, within: float) -> None:
    await page.wait_for(
        f"(window.synapscribePlayLog || []).some(e => e.requestId === {json.dumps(request_id)} && e.event === 'play')",
        within,
        "the answer being spoken",
    )


async def _barge_in(page: Page, speech_seconds: float, result: TourResult, within: float) -> dict[str, Any]:
    """Talk over the previous answer while it is spoken: it falls silent at once, and the new
    question is asked and answered."""
    previous = (await page.evaluate(TURNS_JS))[-1]
    await _playing(page, previous["requestId"], within)
    result.barge_in_at = await page.evaluate("performance.now()")
    return await _ask_voice(page, speech_seconds, within)


async def _stop_while_streaming(page: Page, within: float) -> dict[str, Any]:
    """Ask, and press Stop while the answer is still being written: the server stops it."""
    count = await page.evaluate("document.querySelectorAll('.turn').length")
    await page.type_text("#question", STOPPED_QUESTION)
    await page.click("#send")
    await page.wait_for(
        f"document.querySelectorAll('.turn')[{count}]?.dataset.state === 'streaming'"
        " && !document.querySelector('#stop').hidden",
        within,
        "the answer streaming with a Stop button",
    )
    await page.click("#stop")
    return await _answered(page, count, within)


async def _not_audio(page: Page, workdir: Path) -> str:
    notes = workdir / "notes.txt"
    notes.write_text("These are my notes, not a recording.\n")
    await page.set_file("#file", notes)
    text: str = await page.wait_for(
        "document.querySelector('#notice').hidden ? '' : document.querySelector('#notice-text').textContent",
        15,
        "an error for the text file",
    )
    return text


async def _rejected(page: Page, workdir: Path) -> str:
    """A file named like audio that is not: accepted for upload, then rejected with the reason."""
    fake = workdir / "not-really.mp3"
    fake.write_text("This is a text file with an .mp3 name.\n" * 20)
    await page.set_file("#file", fake)
    status: str = await page.wait_for(
        "(() => { const s = document.querySelector('#lecture-status');"
        " return s.dataset.status === 'rejected' ? s.textContent : ''; })()",
        30,
        "the lecture rejected",
    )
    return status


async def _drop_and_reconnect(page: Page, info: dict[str, Any], result: TourResult) -> None:
    owner = await page.evaluate("localStorage.getItem('synapscribe.localIdentity')")
    await page.evaluate(
        "window.__states = []; new MutationObserver(() => window.__states.push("
        "document.querySelector('#connection').dataset.state)).observe("
        "document.querySelector('#connection'), {attributes: true})"
    )
    if await asyncio.to_thread(drop_connections, info, owner) < 1:
        raise AssertionError(f"no live connection of {owner} to close")
    await page.wait_for(
        "window.__states.includes('reconnecting') && document.querySelector('#connection').dataset.state === 'open'",
        20,
        "a reconnect",
    )
    result.reconnect_states = await page.evaluate("window.__states")


async def _all_played(page: Page, within: float) -> list[dict[str, Any]]:
    """The play log, once every sentence shown has ended (or failed)."""
    await page.wait_for(
        "(() => { const n = document.querySelectorAll('.sentences li').length;"
        " const done = (window.synapscribePlayLog || []).filter(e => ['ended', 'error', 'stopped'].includes(e.event)).length;"
        " return n > 0 && done >= n; })()",
        within,
        "every sentence played",
    )
    log: list[dict[str, Any]] = await page.evaluate("window.synapscribePlayLog")
    return log


#: Where `synapscribe demo` and the browser test leave the finished conversation (from the repo root).
SCREENSHOT = Path("build/page-demo.png")


async def run_tour(
    page_url: str,
    info: dict[str, Any],
    workdir: Path,
    screenshot: Path,
    *,
    lecture: Path | None = None,
    full: bool = True,
) -> TourResult:
    """The visit; raises BrowserError (with what the page shows and its console) when a step does
    not happen. `info` is the local stack's `--info-json`. `full=False` (the demo) stops after the
    follow-up with the screenshot, while the answers are still being spoken."""
    result = TourResult()
    lecture = lecture or audiogen.cached_lecture(0.5)
    wav = question_wav(workdir)
    speech_seconds = audiogen.duration_seconds(wav) + 0.5
    marks = {"start": time.monotonic()}
    async with chromium_page(page_url, fake_audio=wav) as page:
        try:
            await _upload_lecture(page, lecture, result, within=90)
            marks["ready"] = time.monotonic()
            result.turns.append(await _ask_voice(page, speech_seconds, within=60))
            result.recorded_type = await page.evaluate("window.synapscribePage.recorder.recorder.mimeType")
            # Talk over the spoken answer (barge-in), then stop an answer while it is written.
            result.turns.append(await _barge_in(page, speech_seconds, result, within=60))
            marks["bargeIn"] = time.monotonic()
            result.turns.append(await _stop_while_streaming(page, within=60))
            marks["stopped"] = time.monotonic()
            result.turns.append(await _ask_text(page, TEXT_QUESTION, within=60))
            # Spoken answers take real time to play (about 4 s a sentence): unticking "Speak the
            # answers" while one is spoken silences it now; the rest are read only.
            await _playing(page, result.turns[-1]["requestId"], within=60)
            result.speech_off_at = await page.evaluate("performance.now()")
            await page.click("#speak")
            result.stop_hidden_after = await page.wait_for(
                "document.querySelector('#stop').hidden", 5, "no Stop button once silent"
            )
            result.turns.append(await _ask_text(page, FOLLOW_UP, within=60))
            marks["asked"] = time.monotonic()
            if not full:
                result.screenshot = await page.screenshot(screenshot)
                return result
            # The spoken answers play on while the student uploads and loses the connection.
            result.not_audio_notice = await _not_audio(page, workdir)
            marks["notAudio"] = time.monotonic()
            await _drop_and_reconnect(page, info, result)
            marks["reconnected"] = time.monotonic()
            result.turns.append(await _ask_text(page, AFTER_RECONNECT, within=60))
            marks["answeredAfterReconnect"] = time.monotonic()
            # A question too long for one frame goes up as a query upload (presigned POST).
            result.turns.append(await _ask_voice(page, LONG_QUESTION_SECONDS, within=60))
            marks["longVoice"] = time.monotonic()
            result.play_log = await _all_played(page, within=90)
            marks["played"] = time.monotonic()
            result.turns = await page.evaluate(TURNS_JS)
            result.screenshot = await page.screenshot(screenshot)
            result.rejected_status = await _rejected(page, workdir)
            marks["done"] = time.monotonic()
        finally:
            result.console = list(page.console)
            result.seconds = {k: round(v - marks["start"], 1) for k, v in marks.items() if k != "start"}
    return result


def summary(result: TourResult) -> str:
    return json.dumps(
        {"lecture": result.lecture_status, "turns": len(result.turns), "seconds": result.seconds}, indent=None
    )
