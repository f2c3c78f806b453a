"""The answer itself: its model slot (`AnswerSlot`) and its text streamed to the client, each
sentence handed to speech as it ends (`AnswerStream`)."""

from __future__ import annotations

import asyncio
import time

from synapscribe import planner
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import citations, media_refs
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.prompt import Prompt
from synapscribe.agentcore.query import Query
from synapscribe.agentcore.sentences import SentenceSplitter
from synapscribe.agentcore.speech import Speech


class AnswerSlot:
    """The model slot of a query's answer, asked for as soon as the query is accepted.

    The request for it joins admission's queue while the query is prepared (session, audio,
    prompt: tens of ms, more under load), so in a burst a transcription that is ready earlier
    does not take the slot an answer accepted before it is about to need: the answers-first
    order admission.py keeps among waiters then holds from acceptance on (issue 12: at 8 slots,
    3 of a burst's 8 answers waited ~1.9 s behind early transcriptions). A preparation that
    fails still fails as before (its error, not `busy`); the request is then withdrawn.
    Released as soon as the answer's stream ends.
    """

    def __init__(self, deps: AgentCoreDeps, query: Query) -> None:
        self.admission = deps.admission
        self.query = query
        self._asked = time.perf_counter()
        self._task: asyncio.Task[None] = asyncio.create_task(self.admission.acquire(adm.ANSWER))
        self._released = False

    async def wait(self) -> None:
        """Until the slot is ours (raises BusyError when none freed within the queue timeout)."""
        await asyncio.shield(self._task)
        self.query.spans.add(self._asked, time.perf_counter(), "queue")

    def release(self) -> None:
        """Give the slot back, or withdraw the request for it (acquire releases a slot granted
        in the same instant it is cancelled)."""
        if self._released:
            return
        self._released = True
        if not self._task.done():
            self._task.cancel()
        elif not self._task.cancelled() and self._task.exception() is None:
            self.admission.release()


class AnswerStream:
    """The model's answer streamed to the client as `answerDelta`s, each complete sentence handed
    to speech as soon as it ends."""

    def __init__(self, deps: AgentCoreDeps, query: Query, speech: Speech | None) -> None:
        self.deps = deps
        self.query = query
        self.speech = speech
        self.pieces: list[str] = []
        self.first_token_ms: float | None = None
        self.chunks = 0  # of the model's stream
        self._splitter = SentenceSplitter()

    @property
    def text(self) -> str:
        return "".join(self.pieces).strip()

    async def run(self, prompt: Prompt, budget: planner.RequestBudget, started: float) -> str:
        """Stream the answer in the model slot the query holds (AnswerSlot); `started` is when
        the query's work began. The lecture's items go by reference when the server holds them."""
        q = self.query
        t_answer = time.perf_counter()
        q.stats["answerSentMs"] = round((t_answer - started) * 1000, 1)
        pieces = media_refs.stream_answer(
            self.deps.vllm,
            self.deps.held,
            prompt.items,
            lambda ref: prompt.messages(budget, ref),
            budget.max_tokens,
            self.deps.platform.agentcore.answer_stream_interval,
        )
        try:
            async for piece in pieces:
                self.chunks += 1
                self._take(piece, started)
                if q.outbox.gone:
                    break
        finally:
            q.spans.add(t_answer, time.perf_counter(), "vllm.answer")
            q.stats["answerChunks"] = self.chunks
            q.outbox.end_of_text()
        rest = self._splitter.flush()
        if rest:
            self._say(rest)
        return self.text

    def _take(self, piece: str, started: float) -> None:
        q = self.query
        if self.first_token_ms is None:
            self.first_token_ms = q.since_receipt()
            q.stats["answerFirstTokenMs"] = round((time.perf_counter() - started) * 1000, 1)
        self.pieces.append(piece)
        sentences = self._splitter.feed(piece)
        q.outbox.send_text(q.request_id, piece, ends_sentence=bool(sentences))
        for sentence in sentences:
            self._say(sentence)

    def _say(self, sentence: str) -> None:
        spoken = citations.unspoken(sentence)  # "[from 01:00-02:00]" is shown, not read aloud
        if self.speech is not None and spoken:
            self.speech.say(spoken)
