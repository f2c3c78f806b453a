"""A student's visit to the page, scripted in a real browser (the browser test and the demo).

Upload a lecture, wait until it is ready, ask by voice (push to talk on Chromium's fake
microphone), ask by text, ask a follow-up, upload a file that is not audio, lose the connection
(the server closes it, as API Gateway's DeleteConnection does) and ask again once the page has
reconnected; then a screenshot of the conversation; then the phone-size part (page_tour_phone).
What the page showed is returned (page_tour_result.TourResult) for checks.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
from boto3.dynamodb.conditions import Attr

from synapscribe_local import audiogen
from synapscribe_local.aws import LOCAL_CREDENTIALS, LOCAL_RESOURCES
from synapscribe_local.browser import Page, chromium_page
from synapscribe_local.page_steps import TURNS_JS, answered, ask_text, holds, playing, turn_count
from synapscribe_local.page_tour_phone import PHONE, at_phone_size
from synapscribe_local.page_tour_result import TourResult

VOICE_QUESTION = "What is the main idea of this lecture?"
STOPPED_QUESTION = "Tell me everything about the lecture, slowly."
TEXT_QUESTION = "Which example does the lecture give?"
FOLLOW_UP = "Can you say that again more simply?"
AFTER_RECONNECT = "Thank you. One more: how does it end?"
#: The talk button is held this long, past the 30 s limit: the page stops at 28.5 s (1.5 s margin),
#: over API Gateway's 32 KB frame at the page's bit rate, so it goes up as a query upload.
LIMIT_HOLD_SECONDS = 32.0
LONG_QUESTION_SECONDS = 28.5

#: The page shows "Speak the answers" unticked and no Stop button (nothing left to stop).
SPEECH_OFF_SHOWN_JS = "!document.querySelector('#speak').checked && document.querySelector('#stop').hidden"
#: The spoken answers' audio elements that are not paused (sounding, or about to), by sentence.
SOUNDING_JS = """window.synapscribePage.player.requests.flatMap(r => [...r.items.entries()]
  .filter(([, item]) => !item.audio.paused).map(([seq]) => ({requestId: r.requestId, seq})))"""


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
    return await answered(page, count, within)


async def _ask_by_click(
    page: Page, speech_seconds: float, result: TourResult, within: float
) -> dict[str, Any]:
    """One quick click starts recording (first use: the microphone is not even on yet when the
    button is up), a second click sends."""
    count = await turn_count(page)
    await page.click("#talk")
    result.quick_click_label = await page.wait_for(
        "(() => { const b = document.querySelector('#talk');"
        " return b.dataset.state === 'recording' ? b.textContent : ''; })()",
        10,
        "recording after one click",
    )
    await asyncio.sleep(speech_seconds)
    await page.click("#talk")
    return await answered(page, count, within)


async def _five_quick_clicks(page: Page, result: TourResult) -> None:
    """Five (and a sixth) quick clicks: nothing that short is sent; the page says how to talk."""
    count = await turn_count(page)
    for _ in range(6):
        await page.click("#talk")
        await asyncio.sleep(0.15)
    result.quick_clicks_status = await page.wait_for(
        "(() => { const s = document.querySelector('#talk-status').textContent;"
        " return document.querySelector('#talk').dataset.state !== 'recording' && s.startsWith('Too short') ? s : ''; })()",
        10,
        "the too-short hint",
    )
    await asyncio.sleep(1.0)
    result.quick_clicks_turns = await turn_count(page) - count


async def _ask_by_space(page: Page, speech_seconds: float, within: float) -> dict[str, Any]:
    """Keyboard only: Space held on the focused talk button records, its release sends."""
    count = await turn_count(page)
    await page.key("#talk", "keyDown")
    await page.wait_for(
        "document.querySelector('#talk').dataset.state === 'recording'", 10, "recording on Space"
    )
    await asyncio.sleep(speech_seconds)
    await page.key("#talk", "keyUp")
    return await answered(page, count, within)


async def _ask_past_the_limit(
    page: Page, hold_seconds: float, result: TourResult, within: float
) -> dict[str, Any]:
    """Hold talk past the length limit: a countdown warns, the recording stops with margin and
    the question is sent (never refused for its length)."""
    count = await turn_count(page)
    await page.press("#talk")
    await page.wait_for("document.querySelector('#talk').dataset.state === 'recording'", 10, "recording")
    # The microphone's level moves while the (fake) microphone speaks.
    result.mic_level_moved = await holds(
        page,
        "(() => { const m = document.querySelector('#mic-level'); return !m.hidden && m.value > 0.02; })()",
        10,
    )
    result.countdown = await page.wait_for(
        "(() => { const s = document.querySelector('#talk-status').textContent;"
        " return s.includes('finish your question') ? s : ''; })()",
        hold_seconds,
        "the countdown before the limit",
    )
    await page.wait_for(
        "document.querySelector('#talk').dataset.state !== 'recording'", hold_seconds, "the stop at the limit"
    )
    result.auto_stop_status = await page.evaluate("document.querySelector('#talk-status').textContent")
    await page.release("#talk")
    return await answered(page, count, within)


async def _sizes_and_audit(page: Page, axe: Path | None, result: TourResult, name: str) -> None:
    """The talk button's size, the ask bar on screen, and axe-core's findings at this size."""
    await page.evaluate("window.scrollTo(0, 0)")
    result.talk_box[name] = await page.evaluate(
        "(() => { const r = document.querySelector('#talk').getBoundingClientRect();"
        " return {width: r.width, height: r.height}; })()"
    )
    if name == "phone":
        # Scrolled to the top of a long conversation, the ask bar is still on screen.
        result.ask_bar_on_screen = await page.evaluate(
            "(() => { const r = document.querySelector('#ask').getBoundingClientRect();"
            " return document.body.scrollHeight > innerHeight && r.top >= 0 && r.bottom <= innerHeight + 1; })()"
        )
    if axe is None:
        return
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(await asyncio.to_thread(axe.read_text))
    result.audit[name] = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id,"
        " impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"
    )


async def _replay(page: Page, index: int, result: TourResult, within: float) -> None:
    request_id = (await page.evaluate(TURNS_JS))[index]["requestId"]
    await page.click(f".turn[data-request-id='{request_id}'] .replay")
    await playing(page, f"{request_id}#replay-1", within)
    result.replay_played = True
    await page.click("#stop")


async def _play_citation(page: Page, index: int, result: TourResult, within: float) -> None:
    """Click an answer's first timestamp: the lecturer's recording plays from there."""
    request_id = (await page.evaluate(TURNS_JS))[index]["requestId"]
    await page.click(f".turn[data-request-id='{request_id}'] .cite")
    played = await page.wait_for("(window.synapscribeLectureLog || [])[0]", within, "the lecture playing")
    result.lecture_played = {
        **played,
        "src": await page.evaluate("document.querySelector('#lecture-audio').src"),
    }
    await page.evaluate("document.querySelector('#lecture-audio').pause()")


async def _empty_file(page: Page, workdir: Path) -> str:
    empty = workdir / "empty.mp3"
    empty.write_bytes(b"")
    await page.evaluate("document.querySelector('#notice').hidden = true")  # the last file's words
    await page.set_file("#file", empty)
    text: str = await page.wait_for(
        "document.querySelector('#notice').hidden ? '' : document.querySelector('#notice-text').textContent",
        10,
        "an error for the empty file",
    )
    return text


async def _barge_in(page: Page, speech_seconds: float, result: TourResult, within: float) -> dict[str, Any]:
    """Talk over the previous answer while it is spoken: it falls silent at once, and the new
    question is asked and answered."""
    previous = (await page.evaluate(TURNS_JS))[-1]
    await playing(page, previous["requestId"], within)
    result.barge_in_at = await page.evaluate("performance.now()")
    return await _ask_voice(page, speech_seconds, within)


async def _stop_while_streaming(page: Page, within: float) -> dict[str, Any]:
    """Ask, and press Stop while the answer is still being written: the server stops it."""
    count = await page.evaluate("document.querySelectorAll('.turn').length")
    await page.type_text("#question", STOPPED_QUESTION)
    await page.click("#send")
    # (With a fast model the answer may be complete before the click: the test's model is slow.)
    state = await page.wait_for(
        f"(() => {{ const s = document.querySelectorAll('.turn')[{count}]?.dataset.state;"
        " return s === 'streaming' && !document.querySelector('#stop').hidden ? s"
        " : ['answered', 'error'].includes(s) ? s : ''; })()",
        within,
        "the answer streaming with a Stop button",
    )
    if state == "streaming":
        await page.click("#stop")
    return await answered(page, count, within)


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


def phone_screenshot_path(screenshot: Path) -> Path:
    """The phone-size screenshot beside the desktop one (build/page-demo-phone.png)."""
    return screenshot.with_name(f"{screenshot.stem}-phone{screenshot.suffix}")


async def _screenshots(page: Page, screenshot: Path, result: TourResult, axe: Path | None = None) -> None:
    """The conversation at desktop and phone sizes (audited with axe-core when given)."""
    await _sizes_and_audit(page, axe, result, "desktop")
    result.screenshot = await page.screenshot(screenshot)
    await page.viewport(PHONE, mobile=True)
    try:
        await asyncio.sleep(0.3)  # layout at the new size
        await _sizes_and_audit(page, axe, result, "phone")
        # The phone's screen as the student sees it: the newest cited answer above the sticky ask bar.
        await page.evaluate(
            "(() => { const cited = [...document.querySelectorAll('.turn')].filter(t => t.querySelector('.cite'));"
            " if (cited.length) cited.at(-1).scrollIntoView({block: 'center'});"
            " else window.scrollTo(0, document.body.scrollHeight); })()"
        )
        result.phone_screenshot = await page.screenshot(phone_screenshot_path(screenshot), full_page=False)
    finally:
        await page.viewport(None)


async def run_tour(
    page_url: str,
    info: dict[str, Any],
    workdir: Path,
    screenshot: Path,
    *,
    lecture: Path | None = None,
    full: bool = True,
    axe: Path | None = None,
) -> TourResult:
    """The visit; raises BrowserError (with what the page shows and its console) when a step does
    not happen. `info` is the local stack's `--info-json`. `full=False` (the demo) stops after the
    follow-up with the screenshots (desktop and phone). `axe`: axe-core's script, to audit the
    page at both sizes."""
    result = TourResult()
    lecture = lecture or audiogen.cached_lecture(0.5)
    wav = question_wav(workdir)
    speech_seconds = audiogen.duration_seconds(wav) + 0.5
    marks = {"start": time.monotonic()}
    async with chromium_page(page_url, fake_audio=wav) as page:
        try:
            await _upload_lecture(page, lecture, result, within=90)
            marks["ready"] = time.monotonic()
            # First use: one quick click starts recording, the next sends.
            result.turns.append(await _ask_by_click(page, speech_seconds, result, within=60))
            result.recorded_type = await page.evaluate("window.synapscribePage.recorder.recorder.mimeType")
            # Talk over the spoken answer (barge-in, press and hold), then click too quickly.
            result.turns.append(await _barge_in(page, speech_seconds, result, within=60))
            marks["bargeIn"] = time.monotonic()
            await _five_quick_clicks(page, result)
            # Stop an answer while it is written.
            result.turns.append(await _stop_while_streaming(page, within=60))
            marks["stopped"] = time.monotonic()
            result.turns.append(await ask_text(page, TEXT_QUESTION, within=60))
            # Spoken answers take real time to play (about 4 s a sentence): unticking "Speak the
            # answers" while one is spoken silences it now; the rest are read only.
            await playing(page, result.turns[-1]["requestId"], within=60)
            result.speech_off_at = await page.evaluate("performance.now()")
            await page.click("#speak")
            # The page has taken the untick once the box shows it and Stop is gone; from then on
            # nothing may sound (a sentence's `playing` already on its way at the click is older).
            result.stop_hidden_after = await holds(page, SPEECH_OFF_SHOWN_JS, 5)
            result.speech_off_shown_at = await page.evaluate("performance.now()")
            result.turns.append(await ask_text(page, FOLLOW_UP, within=60))
            result.sounding_after_speech_off = await page.evaluate(SOUNDING_JS)
            marks["asked"] = time.monotonic()
            if not full:
                await _screenshots(page, screenshot, result)
                return result
            result.not_audio_notice = await _not_audio(page, workdir)
            result.empty_file_notice = await _empty_file(page, workdir)
            marks["notAudio"] = time.monotonic()
            await _drop_and_reconnect(page, info, result)
            marks["reconnected"] = time.monotonic()
            result.turns.append(await ask_text(page, AFTER_RECONNECT, within=60))
            marks["answeredAfterReconnect"] = time.monotonic()
            # Keyboard only: Space held on the talk button.
            result.turns.append(await _ask_by_space(page, speech_seconds, within=60))
            marks["space"] = time.monotonic()
            # Held past the limit: too long for one frame, it goes up as a query upload.
            result.turns.append(await _ask_past_the_limit(page, LIMIT_HOLD_SECONDS, result, within=60))
            marks["longVoice"] = time.monotonic()
            result.play_log = await _all_played(page, within=90)
            marks["played"] = time.monotonic()
            result.turns = await page.evaluate(TURNS_JS)
            result.announced = await page.evaluate("document.querySelector('#announcer').textContent")
            answer = result.turns[3]["answer"]
            result.answer_text_count = await page.evaluate(
                f"document.body.innerText.split({json.dumps(answer)}).length - 1"
            )
            await _replay(page, 3, result, within=30)
            await _play_citation(page, 3, result, within=30)
            result.play_log = await page.evaluate("window.synapscribePlayLog")
            await _screenshots(page, screenshot, result, axe=axe)
            marks["audited"] = time.monotonic()
            await at_phone_size(page, workdir, speech_seconds, result, within=60)
            marks["done"] = time.monotonic()
        finally:
            result.console = list(page.console)
            result.seconds = {k: round(v - marks["start"], 1) for k, v in marks.items() if k != "start"}
    return result


def summary(result: TourResult) -> str:
    return json.dumps(
        {"lecture": result.lecture_status, "turns": len(result.turns), "seconds": result.seconds}, indent=None
    )
