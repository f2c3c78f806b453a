"""The tour's phone-size part: a student on a phone asks, talks over the spoken answer, stops an
answer, uploads a file that is not audio and one that is rejected, reloads (the conversation comes
back and its timestamps play the lecture), and meets a browser that blocks sound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from synapscribe_local.browser import Page
from synapscribe_local.page_steps import TURNS_JS, answered, ask_text, holds, playing, shown, turn_count
from synapscribe_local.page_tour_result import TourResult

PHONE_QUESTION = "Where does photosynthesis take place?"
PHONE_STOPPED_QUESTION = "On my phone: tell me all of it, slowly."
BLOCKED_QUESTION = "Will I hear this answer?"

#: A phone's screen in CSS pixels (an iPhone 12-15's), for the phone-size steps.
PHONE = (390, 844)


async def _ask_at_phone_size(page: Page, result: TourResult, within: float) -> None:
    """On a phone: a typed question is answered, and the ask bar stays on screen below it."""
    count = await turn_count(page)
    result.phone_turn = await ask_text(page, PHONE_QUESTION, within)
    result.phone_turn["askBarOnScreen"] = await page.evaluate(
        f"(() => {{ const a = document.querySelector('#ask').getBoundingClientRect();"
        f" const t = document.querySelectorAll('.turn')[{count}].getBoundingClientRect();"
        " return {ok: a.top >= 0 && a.bottom <= innerHeight + 1 && t.bottom <= a.top + 1,"
        " ask: [a.top, a.bottom], turn: [t.top, t.bottom], height: innerHeight}; })()"
    )


#: The button a student would press, found by its role and accessible name (its text or
#: aria-label), visible; marked so that a real click can be aimed at its centre.
BUTTON_NAMED_JS = """((name) => {
  const b = [...document.querySelectorAll('button')].find(b => !b.closest('[hidden]')
    && (b.getAttribute('aria-label') || b.textContent).trim() === name && b.getClientRects().length);
  document.querySelectorAll('[data-tour-target]').forEach(e => delete e.dataset.tourTarget);
  if (b) b.dataset.tourTarget = 'yes';
  return !!b; })"""


async def _click_button(page: Page, name: str, within: float = 10) -> None:
    await page.wait_for(f"{BUTTON_NAMED_JS}({json.dumps(name)})", within, f"a button named {name!r}")
    await page.click("[data-tour-target='yes']")


#: What the alert (role=alert) says when it is on the screen, else ''.
ALERT_ON_SCREEN_JS = """(() => { const a = document.querySelector('[role=alert]');
  if (!a || a.hidden) return ''; const r = a.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight && r.width > 0 ? a.textContent.trim() : ''; })()"""


async def _barge_in_at_phone_size(
    page: Page, speech_seconds: float, result: TourResult, within: float
) -> None:
    """On a phone, holding "Hold to talk" while the last answer is spoken silences it at once."""
    previous = (await page.evaluate(TURNS_JS))[-1]["requestId"]
    await playing(page, previous, within)
    at = await page.evaluate("performance.now()")
    count = await turn_count(page)
    await page.wait_for(f"{BUTTON_NAMED_JS}('Hold to talk')", 10, "the talk button")
    await page.press("[data-tour-target='yes']")
    await page.wait_for("document.querySelector('#talk').dataset.state === 'recording'", 10, "recording")
    await asyncio.sleep(speech_seconds)
    await page.release("#talk")
    turn = await answered(page, count, within)
    log = await page.evaluate("window.synapscribePlayLog")
    result.phone_barge_in = {
        "at": at,
        "turn": turn,
        "previous": [e for e in log if e["requestId"] == previous],
    }


async def _stop_at_phone_size(page: Page, result: TourResult, within: float) -> None:
    """On a phone, Stop (the button named "Stop answer") ends an answer being written."""
    count = await turn_count(page)
    await page.type_text("#question", PHONE_STOPPED_QUESTION)
    await _click_button(page, "Ask")
    await page.wait_for(
        f"document.querySelectorAll('.turn')[{count}]?.dataset.state === 'streaming'",
        within,
        "an answer streaming",
    )
    await _click_button(page, "Stop answer")
    result.phone_stopped = await answered(page, count, within)


async def _not_audio_at_phone_size(page: Page, workdir: Path, result: TourResult) -> None:
    """On a phone, a file that is not audio: the alert's words, on the screen."""
    await page.evaluate("document.querySelector('#notice').hidden = true")  # the last words
    notes = workdir / "phone-notes.txt"
    notes.write_text("Notes typed on a phone, not a recording.\n")
    await page.set_file("#file", notes)
    result.phone_not_audio = {"alert": await shown(page, ALERT_ON_SCREEN_JS, 15)}


#: Test-only (registered before the reload): HTMLMediaElement.play refuses as a browser's autoplay
#: policy does (NotAllowedError) once the tour sets `__tourBlockPlayback`.
BLOCK_PLAYBACK_JS = """(() => { const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (window.__tourBlockPlayback) return Promise.reject(new DOMException(
      "play() failed because the user didn't interact with the document first.", "NotAllowedError"));
    return play.call(this); }; })()"""


async def _restored_citation_plays(page: Page, result: TourResult, within: float) -> None:
    """After the reload: the first restored turn's first timestamp plays the lecture."""
    before = await page.evaluate("(window.synapscribeLectureLog || []).length")
    if not await page.evaluate("!!document.querySelector(\".turn[data-restored='true'] .cite\")"):
        return  # no timestamp to click: the test says so
    await page.click(".turn[data-restored='true'] .cite")
    played = await shown(page, f"(window.synapscribeLectureLog || [])[{before}]", within)
    result.restored_lecture_played = played or {}
    await page.evaluate("document.querySelector('#lecture-audio').pause()")


async def _blocked_playback(page: Page, result: TourResult, within: float) -> None:
    """The browser refuses to play the spoken answer: the page says how to allow sound."""
    await page.evaluate("window.__tourBlockPlayback = true; document.querySelector('#notice').hidden = true")
    if not await page.evaluate("document.querySelector('#speak').checked"):
        await page.click("#speak")
    turn = await ask_text(page, BLOCKED_QUESTION, within)
    result.blocked = {"turn": turn, "alert": await shown(page, ALERT_ON_SCREEN_JS, 10)}
    await page.evaluate("window.__tourBlockPlayback = false")


async def _come_back(page: Page, result: TourResult, within: float) -> None:
    """Reload in the middle of an answer: the lecture list and the conversation come back."""
    await page.type_text("#question", "One last thing before I go?")
    await page.click("#send")
    await page.wait_for(
        "[...document.querySelectorAll('.turn')].at(-1).dataset.state === 'streaming'",
        within,
        "an answer streaming",
    )
    await page.send("Page.reload")
    await holds(
        page,
        "document.querySelector('#connection')?.dataset.state === 'open'"
        " && document.querySelectorAll('.turn[data-restored=\"true\"]').length > 0"
        " && !document.querySelector('#ask').hidden",
        within,
    )
    result.restored_turns = await page.evaluate(TURNS_JS)
    result.lectures_listed = await page.evaluate(
        "[...document.querySelectorAll('#lectures li .name')].map(e => e.textContent)"
    )
    result.welcome_back = await page.evaluate("document.querySelector('#notice-text').textContent")


async def _rejected(page: Page, workdir: Path, result: TourResult) -> str:
    """A file named like audio that is not: accepted for upload, then rejected with the reason;
    the lecture that was ready stays, and questions can still be asked about it."""
    fake = workdir / "not-really.mp3"
    fake.write_text("This is a text file with an .mp3 name.\n" * 20)
    await page.set_file("#file", fake)
    status: str = await page.wait_for(
        "(() => { const s = document.querySelector('#lecture-status');"
        " return s.dataset.status === 'rejected' ? s.textContent : ''; })()",
        30,
        "the lecture rejected",
    )
    result.kept_after_reject = await page.evaluate(
        "({askVisible: !document.querySelector('#ask').hidden, talkEnabled: !document.querySelector('#talk').disabled,"
        " notice: document.querySelector('#notice-text').textContent})"
    )
    return status


async def at_phone_size(
    page: Page, workdir: Path, speech_seconds: float, result: TourResult, within: float
) -> None:
    """A student on a phone: ask, talk over its spoken answer, stop an answer, a file that is not audio, one rejected, reload
    (the conversation comes back and its timestamps play the lecture), a browser that blocks sound."""
    await page.viewport(PHONE, mobile=True)
    try:
        if not await page.evaluate("document.querySelector('#speak').checked"):
            await page.click("#speak")  # spoken again, to talk over it
        await _ask_at_phone_size(page, result, within)
        await _barge_in_at_phone_size(page, speech_seconds, result, within)
        await _stop_at_phone_size(page, result, within)
        await _not_audio_at_phone_size(page, workdir, result)
        result.rejected_status = await _rejected(page, workdir, result)
        await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": BLOCK_PLAYBACK_JS})
        await _come_back(page, result, within)
        await _restored_citation_plays(page, result, within)
        await _blocked_playback(page, result, within)
    finally:
        await page.viewport(None)
