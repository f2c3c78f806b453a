"""The smoke test's three questions (voice, typed with the codeword, the follow-up that asks for it)
and what each answer must show: the stream, the budget, the stand-in's label, its speech, and for
the follow-up the codeword. Each answer is recorded in the report's conversation."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from synapscribe_ops.smoke.checks import (
    budget_problems,
    codeword_question,
    follow_up_problems,
    looks_like_mp3,
    said_nothing,
    standin_label_problems,
    stream_problems,
)
from synapscribe_ops.smoke.client import QueryResult, StackClient
from synapscribe_ops.smoke.inputs import (
    FOLLOW_UP,
    MEANINGLESS,
    MEANINGLESS_ATTEMPTS,
    TEXT_QUESTION,
    VOICE_QUESTION,
    WORD_CHECKS,
    SmokeInputs,
)
from synapscribe_ops.smoke.report import SmokeReport, Turn
from synapscribe_ops.smoke.steps import StepFailed


class Questions:
    """Asks the questions on a session and checks their answers; keeps the latest answer to each
    kind of question (`results`) for the ones after it."""

    def __init__(self, inputs: SmokeInputs, report: SmokeReport) -> None:
        self.inputs = inputs
        self.report = report
        self.results: dict[str, QueryResult] = {}

    @property
    def meaningless(self) -> bool:
        return self.inputs.model_words == MEANINGLESS

    async def _ask_once(
        self,
        student: StackClient,
        session_id: str,
        kind: str,
        question: str,
        voice_input: bool,
        voice_output: bool,
        **fields: Any,
    ) -> QueryResult:
        result = await student.query(
            session_id, within=self.inputs.budget.answer_ms / 1000 + 5, voice=voice_output, **fields
        )
        self._record_turn(kind, question, result)
        silent = self.meaningless and said_nothing(result)
        problems = stream_problems(
            result, voice_input=voice_input, voice_output=voice_output, allow_empty=silent
        )
        problems += budget_problems(result, self.inputs.budget, voice_output=voice_output)
        if self.inputs.expect_standin:
            problems += standin_label_problems(result)
        if result.answer is not None and result.answer.audio:
            problems += await self._fetch_audio(result.answer.audio[0])
        self.results[kind] = result
        if problems:
            raise StepFailed("; ".join(problems))
        return result

    async def _ask(
        self,
        student: StackClient,
        session_id: str,
        kind: str,
        question: str,
        voice_input: bool,
        voice_output: bool,
        **fields: Any,
    ) -> str:
        # A model whose words mean nothing may say nothing at all: its answer then has no text
        # or speech to check, so the question is asked again (each try is checked and listed).
        attempts = MEANINGLESS_ATTEMPTS if self.meaningless else 1
        for attempt in range(1, attempts + 1):
            result = await self._ask_once(
                student, session_id, kind, question, voice_input, voice_output, **fields
            )
            if not said_nothing(result):
                t = result.timings()
                return ", ".join(f"{k} {v:.0f}" for k, v in t.items() if v is not None)
            self.report.skipped.append(
                f"{kind} question, try {attempt}: the model said nothing, so that answer's text and "
                "speech could not be checked (the model's words mean nothing); asked again"
            )
        raise StepFailed(
            f"the model said nothing in {attempts} tries: the answer's text and speech were never checked"
        )

    async def voice(self, student: StackClient, session_id: str) -> str:
        """The voice question, sent inline."""
        clip = base64.b64encode(self.inputs.voice_question).decode()
        return await self._ask(student, session_id, "voice", VOICE_QUESTION, True, True, audio=clip)

    async def text(self, student: StackClient, session_id: str) -> str:
        """The typed question that gives the codeword."""
        return await self._ask(
            student, session_id, "text", self.text_question, False, True, text=self.text_question
        )

    @property
    def text_question(self) -> str:
        """TEXT_QUESTION with this run's codeword."""
        return codeword_question(TEXT_QUESTION, self.inputs.codeword)

    async def follow_up(self, student: StackClient, session_id: str) -> str:
        """The follow-up that asks for the codeword only the earlier turn held."""
        earlier = self.results.get("text")
        if earlier is None or earlier.answer is None:
            raise StepFailed("the earlier text question has no answer to follow up on")
        detail = await self._ask(student, session_id, "follow-up", FOLLOW_UP, False, False, text=FOLLOW_UP)
        if self.meaningless:
            self.skip_word_check("follow-up recalls the codeword")
            return detail + "; word check skipped (the model's words mean nothing)"
        result = self.results["follow-up"]
        problems = follow_up_problems(
            self.text_question,
            result.answer.text if result.answer else "",
            self.inputs.codeword,
            standin=self.inputs.expect_standin,
        )
        if problems:
            raise StepFailed("; ".join(problems))
        return detail + "; gives the codeword only the earlier turn held"

    def skip_word_check(self, name: str) -> None:
        self.report.skipped.append(f"{name}: {WORD_CHECKS[name]} (the model's words mean nothing)")

    def _record_turn(self, kind: str, question: str, result: QueryResult) -> None:
        answer, error = result.answer, result.error
        self.report.conversation.append(
            Turn(
                kind=kind,
                question=question,
                request_id=result.request_id,
                heard=result.transcript,
                answer=answer.text if answer else None,
                audio=len(answer.audio) if answer else 0,
                error=f"{error.code}: {error.message}"
                if error
                else ("no answer (timed out)" if result.timed_out else None),
                client_timings={
                    k: (round(v, 1) if v is not None else None) for k, v in result.timings().items()
                },
                server_timings=answer.timings.wire() if answer else None,
                tts_engine=answer.ttsEngine if answer else None,
            )
        )

    async def _fetch_audio(self, url: str) -> list[str]:
        try:
            async with httpx.AsyncClient(timeout=15) as http:
                response = await http.get(url)
        except httpx.HTTPError as exc:
            return [f"audio url cannot be fetched: {exc}"]
        if response.status_code != 200:
            return [f"audio url answered {response.status_code}"]
        if not looks_like_mp3(response.content):
            return [f"audio url did not return MP3 ({response.content[:16]!r})"]
        return []
