"""Small steps on the student page, shared by the tour's desktop and phone-size parts: read the
turns, ask by text, wait for an answer or for something to show, wait for a sentence to play."""

from __future__ import annotations

import json
from typing import Any

from synapscribe_local.browser import BrowserError, Page

#: Every turn of the conversation, as the page shows it.
TURNS_JS = """[...document.querySelectorAll('.turn')].map(t => ({
  requestId: t.dataset.requestId, kind: t.dataset.kind, state: t.dataset.state || '',
  transport: t.dataset.transport || '', question: t.querySelector('.question').textContent,
  transcript: t.querySelector('.transcript').hidden ? null : t.querySelector('.transcript').textContent,
  answer: t.querySelector('.answer').textContent,
  status: t.querySelector('.status').textContent,
  citationsText: t.querySelector('.citations').hidden ? null : t.querySelector('.citations').textContent,
  citations: [...t.querySelectorAll('.cite')].map(b => ({start: Number(b.dataset.start), end: Number(b.dataset.end)})),
  error: t.querySelector('.error').hidden ? null : t.querySelector('.error').textContent,
  sentences: [...t.querySelectorAll('.sentences li')].map(li => ({seq: Number(li.dataset.seq), state: li.dataset.state || ''}))
}))"""


async def ask_text(page: Page, text: str, within: float) -> dict[str, Any]:
    count = await page.evaluate("document.querySelectorAll('.turn').length")
    await page.type_text("#question", text)
    await page.click("#send")
    return await answered(page, count, within)


async def answered(page: Page, index: int, within: float) -> dict[str, Any]:
    """Turn `index` once it has its answer (or an error)."""
    await page.wait_for(
        f"(() => {{ const t = document.querySelectorAll('.turn')[{index}];"
        " return t && ['answered', 'stopped', 'error'].includes(t.dataset.state); })()",
        within,
        f"the answer to question {index + 1}",
    )
    turns: list[dict[str, Any]] = await page.evaluate(TURNS_JS)
    return turns[index]


async def holds(page: Page, expression: str, within: float) -> bool:
    """Whether `expression` comes true within `within` s (the test asserts it, so one missing
    behaviour fails its own test instead of ending the whole tour)."""
    try:
        await page.wait_for(expression, within, expression)
    except BrowserError:
        return False
    return True


async def shown(page: Page, expression: str, within: float) -> Any:
    """`expression`'s value once truthy, or None when it is not within `within` s (the test
    asserts it, so one missing behaviour fails its own test instead of ending the whole tour)."""
    try:
        return await page.wait_for(expression, within, expression)
    except BrowserError:
        return None


async def turn_count(page: Page) -> int:
    count: int = await page.evaluate("document.querySelectorAll('.turn').length")
    return count


async def playing(page: Page, request_id: str, within: float) -> None:
    await page.wait_for(
        f"(window.synapscribePlayLog || []).some(e => e.requestId === {json.dumps(request_id)} && e.event === 'play')",
        within,
        "the answer being spoken",
    )
