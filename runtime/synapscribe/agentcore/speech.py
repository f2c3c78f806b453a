"""One answer's sentences spoken and announced as `audio`, in order (`Speech`)."""

from __future__ import annotations

import asyncio
import logging
import time

from synapscribe import keys
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.query import Query
from synapscribe.agentcore.vllm_client import UpstreamError
from synapscribe.contract import Audio

log = logging.getLogger(__name__)

NO_TTS_ENGINE = "none"
#: One sentence's TTS failure does not silence the rest of the answer; this many failures in a
#: row (the speech service is down, not slow once) do, so the answer does not wait on it further.
TTS_GIVE_UP_AFTER_FAILURES = 3


class Speech:
    """One answer's sentences spoken (TTS, concurrently) and announced as `audio`, in order.

    A sentence whose TTS fails is left out; TTS_GIVE_UP_AFTER_FAILURES failures in a row mean
    the speech service is down, and the rest of the answer is not spoken.
    """

    def __init__(self, deps: AgentCoreDeps, query: Query) -> None:
        self.deps = deps
        self.query = query
        self.urls: list[str] = []
        self.engines: list[str] = []
        self.count = 0  # sentences given to TTS
        self.failed = False
        self._failures = 0  # in a row
        self._queue: asyncio.Queue[tuple[asyncio.Task[tuple[str, str] | None], str] | None] = asyncio.Queue()
        self._announcer = query.spawn(self._announce())

    def say(self, sentence: str) -> None:
        task = self.query.spawn(self._speak(self.count, sentence))
        self._queue.put_nowait((task, sentence))
        self.count += 1

    def close(self) -> None:
        """No more sentences: the announcer ends after the last one."""
        self._queue.put_nowait(None)

    async def finished(self) -> None:
        await self._announcer

    def engine(self) -> str:
        return ",".join(sorted(set(self.engines))) if self.engines else NO_TTS_ENGINE

    async def _speak(self, seq: int, text: str) -> tuple[str, str] | None:
        """The sentence's audio stored in S3: (presigned URL, TTS engine), or None if not spoken."""
        if self.failed:
            return None
        deps, p, job = self.deps, self.deps.platform, self.query.job
        t = time.perf_counter()
        try:
            speech = await deps.tts.speak(text, deps.voice or p.tts.default_voice)
        except UpstreamError as exc:
            self._failed_once(seq, exc)
            return None
        finally:
            self.query.spans.add(t, time.perf_counter(), "tts")
        self._failures = 0
        key = keys.response_key(job.sessionId, job.requestId, seq, p)
        await deps.aws.put(key, speech.audio, "audio/mpeg", self.query.spans)
        return deps.aws.presign(key, p.limits.response_url_expiry_seconds), speech.engine

    def _failed_once(self, seq: int, exc: UpstreamError) -> None:
        self._failures += 1
        if self._failures >= TTS_GIVE_UP_AFTER_FAILURES:
            self.failed = True
        log.warning(
            "request %s: sentence %d not spoken (%s)%s",
            self.query.request_id,
            seq,
            exc,
            "; answering the rest without speech" if self.failed else "",
        )

    async def _announce(self) -> None:
        """Send each spoken sentence as `audio`, in the answer's order, numbered without gaps."""
        seq = 0
        while (item := await self._queue.get()) is not None:
            task, text = item
            result = await task
            if result is None:
                continue
            url, engine = result
            self.urls.append(url)
            self.engines.append(engine)
            self.query.outbox.send(Audio(requestId=self.query.request_id, seq=seq, url=url, text=text))
            seq += 1
