"""Debian's Chromium, headless, driven over the DevTools protocol (tests and the demo).

No WebDriver: the protocol is one WebSocket, and `websockets` is already a dependency. Chromium's
fake microphone plays a WAV file (`--use-file-for-fake-audio-capture`), so MediaRecorder records
real Opus from generated speech; everything runs in real time (no virtual time budget, which would
end the page before MediaRecorder has finished).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from synapscribe_local.services import terminate

#: The flags the browser test and the demo run Chromium with (issue 14), plus the debugging port.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or the page did something other than expected."""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Page:
    """One tab: send commands, evaluate JavaScript, wait for conditions."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            future = self._replies.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif message.get("method") == "Log.entryAdded":
                entry = message["params"]["entry"]
                self.console.append(
                    f"{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}".strip()
                )
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append(f"exception: {details.get('exception', {}).get('description', details)}")

    async def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if not browser:
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ident] = future
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of `expression` (awaited if it is a promise), as JSON."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(
                f"{expression[:80]}: {details.get('exception', {}).get('description', details)}"
            )
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float, what: str) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + within
        problem = ""
        while True:
            try:
                value = await self.evaluate(expression)
            except BrowserError as exc:  # e.g. the element is not there yet
                value, problem = None, str(exc)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"the page did not show {what} within {within:g} s ({problem or 'still false'}); "
                    + await self.describe()
                )
            await asyncio.sleep(0.1)

    async def describe(self) -> str:
        """What the page shows and its console's last lines (for failure messages)."""
        try:
            text = await self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
        except BrowserError as exc:
            text = f"(unreadable: {exc})"
        return f"the page shows:\n{text}\nconsole:\n" + "\n".join(self.console[-15:])

    async def click(self, selector: str) -> None:
        await self._mouse(selector, ("mousePressed", "mouseReleased"))

    async def press(self, selector: str) -> None:
        await self._mouse(selector, ("mousePressed",))

    async def release(self, selector: str) -> None:
        await self._mouse(selector, ("mouseReleased",))

    async def _mouse(self, selector: str, kinds: tuple[str, ...]) -> None:
        """Real input events at the element's centre (they count as a user gesture)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in kinds:
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "buttons": 1, "clickCount": 1},
            )

    async def key(self, selector: str, kind: str, key: str = " ") -> None:
        """A real key event (`keyDown` or `keyUp`) on the focused `selector` (Space by default)."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        codes = {" ": ("Space", 32), "Enter": ("Enter", 13)}
        code, vk = codes[key]
        params: dict[str, Any] = {"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": vk}
        if kind == "keyDown" and key == " ":
            params["text"] = " "
        await self.send("Input.dispatchKeyEvent", params)

    async def viewport(self, size: tuple[int, int] | None, *, mobile: bool = False) -> None:
        """Emulate a screen of `size` CSS pixels (a phone with `mobile`); None: the window's own."""
        if size is None:
            await self.send("Emulation.clearDeviceMetricsOverride")
            return
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": size[0], "height": size[1], "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile},
        )

    async def type_text(self, selector: str, text: str) -> None:
        await self.click(selector)
        await self.send("Input.insertText", {"text": text})

    async def set_file(self, selector: str, path: Path) -> None:
        document = await self.send("DOM.getDocument", {"depth": 0})
        node = await self.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector}
        )
        await self.send("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node["nodeId"]})

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page}
        )
        data = base64.b64decode(shot["data"])

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(write)
        return path


@contextlib.asynccontextmanager
async def chromium_page(
    url: str,
    *,
    fake_audio: Path,
    chromium: str | None = None,
    window: tuple[int, int] = (1000, 1200),
    start_timeout: float = 30.0,
) -> AsyncIterator[Page]:
    """Chromium headless with a fresh profile and `fake_audio` as the microphone, on `url`."""
    binary = chromium or find_chromium()
    if binary is None:
        raise BrowserError("chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="synapscribe-chromium-"))
    argv = [
        binary,
        *HEADLESS_FLAGS,
        f"--use-file-for-fake-audio-capture={fake_audio}",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        f"--window-size={window[0]},{window[1]}",
        "about:blank",
    ]
    process = await asyncio.to_thread(
        functools.partial(
            subprocess.Popen,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        ws_url = await _devtools_url(profile, process, start_timeout)
        async with connect(ws_url, max_size=None, ping_interval=None) as ws:
            page = await _open_tab(ws, url)
            try:
                yield page
            finally:
                page._reader.cancel()
    finally:
        terminate(process, 10, group=True)
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_url(profile: Path, process: subprocess.Popen[Any], within: float) -> str:
    """Chromium writes its debugging port and browser path to DevToolsActivePort once it listens."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            raise BrowserError(f"chromium exited with status {process.returncode}:\n{err}")
        with contextlib.suppress(OSError):
            lines = marker.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.1)
    raise BrowserError(f"chromium did not open its DevTools port within {within:g} s")


async def _open_tab(ws: ClientConnection, url: str) -> Page:
    async def call(ident: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return dict(reply["result"])

    target = await call(1, "Target.createTarget", {"url": "about:blank"})
    attached = await call(2, "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
    page = Page(ws, attached["sessionId"])
    await page.send("Runtime.enable")
    await page.send("Log.enable")
    await page.send("Page.enable")
    await page.send("Page.navigate", {"url": url})
    await page.wait_for(
        f"location.href === {json.dumps(url)} && document.readyState === 'complete'", 30, "the page loaded"
    )
    return page
