"""The smoke test's scenario: one lecture, one session, three questions, hostile messages.

The questions: a voice question; a typed one that asks the model to name one of PICK_TERMS and
gives it a codeword (a made-up word, new each run); a follow-up that asks for the codeword, whose
answer must contain it (checked by keyword, so it holds for a real model too). The lecture names the
terms, so only the codeword tells whether the conversation's history reached the model. When the
stack runs the model stand-in (`expect_standin`), every answer and transcript must carry its label,
and the follow-up's answer must show the history the way the stand-in does (it quotes the previous
question).

For a model whose words mean nothing (`model_words="meaningless"`: the random tiny model the
engine tests run) every check of the contract, the order, the timing and the audio holds; the
checks of what the words say are skipped, and the report lists each one it skipped. Such a model
may also say nothing at all: that answer is checked for everything but its text and speech, listed,
and the question asked again (up to MEANINGLESS_ATTEMPTS times) until an answer has words.

Every step is recorded with its outcome and duration; the report lists what failed.
"""

from __future__ import annotations

import asyncio
import base64
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from synapscribe.contract import ErrorMessage, Lecture, Session, UploadUrl
from synapscribe.platform import load_platform

from synapscribe_ops.smoke.checks import (
    PICK_TERMS,
    Budget,
    budget_problems,
    codeword_question,
    contract_problems,
    follow_up_problems,
    looks_like_mp3,
    new_codeword,
    said_nothing,
    standin_label_problems,
    stream_problems,
)
from synapscribe_ops.smoke.client import ClientError, QueryResult, Received, StackClient

if TYPE_CHECKING:
    from synapscribe_ops.smoke.aws_auth import GuestAccess

VOICE_QUESTION = "Where does photosynthesis take place in the plant?"
TEXT_QUESTION = (
    f"Which of these does the lecture mention: {', '.join(list(PICK_TERMS)[:-1])} or {list(PICK_TERMS)[-1]}?"
    " Name just one."
)
FOLLOW_UP = "What is my codeword? Answer in one short sentence."
#: `model_words`: the model's words mean something (any real model, the stand-in) or nothing.
MEANINGFUL = "meaningful"
MEANINGLESS = "meaningless"
MODEL_WORDS = (MEANINGFUL, MEANINGLESS)
#: How often a question is asked while a meaningless model answers it with no words at all.
MEANINGLESS_ATTEMPTS = 5
#: The checks of what the model's words say, skipped for a model whose words mean nothing.
WORD_CHECKS: dict[str, str] = {
    "follow-up recalls the codeword": "the follow-up's answer gives the codeword the text question "
    "gave (only the conversation's history holds it)",
}
#: What a successful answer to each action is (a query's stream ends in `answer`).
SUCCESS_TYPES = {
    "createUpload": "uploadUrl",
    "getLecture": "lecture",
    "startSession": "session",
    "endSession": "sessionEnded",
    "query": "answer",
}


class StepFailed(Exception):
    """A step's check failed; the message says what was expected and what came."""


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str = ""


@dataclass
class Turn:
    kind: str  # text | voice | follow-up
    question: str
    request_id: str
    heard: str | None
    answer: str | None
    audio: int
    error: str | None
    client_timings: dict[str, float | None]
    server_timings: dict[str, Any] | None
    tts_engine: str | None


@dataclass
class SmokeReport:
    url: str
    mode: str
    budget: Budget
    #: True when the stack runs the model stand-in: its label is then required everywhere.
    expect_standin: bool = False
    #: MEANINGFUL, or MEANINGLESS when the word checks were skipped (listed in `skipped`).
    model_words: str = MEANINGFUL
    #: The checks not made, each with why (word checks on a model whose words mean nothing).
    skipped: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    conversation: list[Turn] = field(default_factory=list)
    lecture: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return bool(self.steps) and not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "mode": self.mode,
            "expectStandin": self.expect_standin,
            "modelWords": self.model_words,
            "skippedChecks": list(self.skipped),
            "budget": self.budget.as_dict(),
            "lecture": self.lecture,
            "steps": [vars(s) for s in self.steps],
            "failures": [f"{s.name}: {s.detail}" for s in self.failures],
            "conversation": [vars(t) for t in self.conversation],
        }


Connector = Callable[[str], Awaitable[StackClient]]


@dataclass
class SmokeInputs:
    lecture: Path
    lecture_content_type: str
    voice_question: bytes  # MP3 of VOICE_QUESTION, small enough to send inline
    budget: Budget = field(default_factory=Budget)
    step_timeout_s: float = 15.0
    expect_standin: bool = False
    model_words: str = MEANINGFUL
    #: The word the text question gives and the follow-up asks for (new each run unless given).
    codeword: str = field(default_factory=new_codeword)

    def __post_init__(self) -> None:
        if self.model_words not in MODEL_WORDS:
            raise ValueError(f"model_words must be one of {', '.join(MODEL_WORDS)}, not {self.model_words!r}")
        if self.expect_standin and self.model_words == MEANINGLESS:
            raise ValueError("the model stand-in's words mean something: it cannot be a meaningless model")


class Scenario:
    """The smoke test's steps, in order; each step is a method that returns its detail or raises
    StepFailed. What a step learns (the student's connection, the lecture, the session, the
    answers) is kept on the scenario for the steps after it."""

    student: StackClient  # set by the connect step
    lecture_id: str  # set by the upload step
    uploaded_at: float
    session_id: str  # set by the startSession step

    def __init__(self, connect: Connector, inputs: SmokeInputs, report: SmokeReport) -> None:
        self.connect = connect
        self.inputs = inputs
        self.report = report
        self.budget = inputs.budget
        self.platform = load_platform()
        self.clients: list[StackClient] = []
        self.results: dict[str, QueryResult] = {}  # the latest answer to each kind of question

    async def step(self, name: str, body: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.monotonic()
        try:
            detail = await body() or ""
            ok = True
        except (StepFailed, ClientError) as exc:
            ok, detail = False, str(exc)
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        self.report.steps.append(Step(name, ok, round((time.monotonic() - started) * 1000, 1), detail))
        return ok

    async def open(self, label: str) -> StackClient:
        client = await self.connect(label)
        self.clients.append(client)
        return client

    async def expect(self, client: StackClient, message: dict[str, Any], kind: str) -> Received:
        got = await client.request(message, kind, within=self.inputs.step_timeout_s)
        if got.type != kind:
            raise StepFailed(f"expected {kind}, got {got.raw!r}")
        if got.problem:
            raise StepFailed(f"{kind} breaks the contract: {got.problem}")
        return got

    async def expect_error(
        self,
        client: StackClient,
        frame: dict[str, Any] | str | bytes,
        code: str,
        request_id: str | None = None,
    ) -> str:
        await client.send(frame)
        action = frame.get("action") if isinstance(frame, dict) else None
        success = SUCCESS_TYPES.get(action) if isinstance(action, str) else None
        got = await client.wait_type(
            "error",
            *([success] if success else []),
            request_id=request_id,
            within=self.inputs.step_timeout_s,
        )
        if not isinstance(got.message, ErrorMessage) or got.message.code != code:
            raise StepFailed(f"expected error {code}, got {got.raw!r}")
        if request_id is not None and got.message.requestId != request_id:
            raise StepFailed(f"error did not echo requestId {request_id}: {got.raw!r}")
        return got.message.message

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            for client in self.clients:
                await client.close()
            self.report.steps.append(self._contract_step())

    def _contract_step(self) -> Step:
        received = [m for c in self.clients for m in c.history]
        problems = contract_problems(received)
        return Step(
            "every message matches the contract",
            not problems,
            0.0,
            "; ".join(problems[:5]) or f"{len(received)} messages checked",
        )

    async def _run(self) -> None:
        # Each of these needs the one before it: a failure ends the scenario (the report says where).
        for name, body in (
            ("connect", self._connect),
            ("upload a lecture through the presigned POST", self._upload_lecture),
            ("lecture becomes ready", self._lecture_ready),
        ):
            if not await self.step(name, body):
                return
        await self.step("getLecture", self._get_lecture)
        if not await self.step("startSession", self._start_session):
            return
        await self.step("voice question (inline audio)", self._voice_question)
        await self.step("text question (name one term)", self._text_question)
        await self.step("follow-up question (needs the earlier turn)", self._follow_up)
        await self._hostile()
        await self.step("endSession", self._end_session)
        await self.step("the connection lived through everything", self._still_open)

    @property
    def meaningless(self) -> bool:
        return self.inputs.model_words == MEANINGLESS

    async def _connect(self) -> str:
        started = time.monotonic()
        self.student = await self.open("student")
        ms = (time.monotonic() - started) * 1000
        if ms > self.budget.connect_ms:
            raise StepFailed(f"connect took {ms:.0f} ms, over the budget of {self.budget.connect_ms:.0f} ms")
        return f"{ms:.0f} ms"

    async def _upload_lecture(self) -> str:
        a = self.student
        data = self.inputs.lecture.read_bytes()
        got = await self.expect(
            a,
            {
                "action": "createUpload",
                "kind": "lecture",
                "filename": self.inputs.lecture.name,
                "contentType": self.inputs.lecture_content_type,
                "sizeBytes": len(data),
            },
            "uploadUrl",
        )
        assert isinstance(got.message, UploadUrl)
        up = got.message
        if not up.key.startswith(self.platform.storage.prefixes.lectures):
            raise StepFailed(f"upload key {up.key!r} is not under lectures/")
        started = time.monotonic()
        response = await a.upload(up, data, self.inputs.lecture.name, self.inputs.lecture_content_type)
        if response.status_code not in (200, 201, 204):
            raise StepFailed(f"presigned POST answered {response.status_code}: {response.text[:300]}")
        self.lecture_id = up.uploadId
        self.uploaded_at = time.monotonic()
        self.report.lecture.update(
            lectureId=up.uploadId, bytes=len(data), uploadMs=round((time.monotonic() - started) * 1000, 1)
        )
        return f"{len(data)} bytes to {up.key}"

    async def _lecture_ready(self) -> str:
        lecture_id = self.lecture_id
        seen: list[str] = []
        deadline = self.uploaded_at + self.budget.lecture_ready_s
        while True:
            got = await self.student.wait_type(
                "lecture",
                where=lambda r: bool(r.data and r.data.get("lectureId") == lecture_id),
                within=max(0.1, deadline - time.monotonic()),
            )
            assert isinstance(got.message, Lecture)
            seen.append(got.message.status)
            if got.message.status == "ready":
                break
            if got.message.status == "rejected":
                raise StepFailed(f"the lecture was rejected: {got.message.reason}")
        seconds = time.monotonic() - self.uploaded_at
        self.report.lecture.update(
            status="ready",
            readyS=round(seconds, 2),
            durationSeconds=got.message.durationSeconds,
            contextMode=got.message.contextMode,
            statuses=seen,
        )
        if got.message.contextMode is None:
            raise StepFailed("a ready lecture without contextMode")
        return f"ready after {seconds:.1f} s ({' -> '.join(seen)}), {got.message.contextMode} mode"

    async def _get_lecture(self) -> str:
        got = await self.expect(
            self.student, {"action": "getLecture", "lectureId": self.lecture_id}, "lecture"
        )
        assert isinstance(got.message, Lecture)
        if got.message.status != "ready":
            raise StepFailed(f"getLecture says {got.message.status}")
        return "ready"

    async def _start_session(self) -> str:
        got = await self.expect(
            self.student, {"action": "startSession", "lectureId": self.lecture_id}, "session"
        )
        assert isinstance(got.message, Session)
        self.session_id = got.message.sessionId
        return got.message.sessionId

    async def _ask_once(
        self, kind: str, question: str, voice_input: bool, voice_output: bool, **fields: Any
    ) -> QueryResult:
        result = await self.student.query(
            self.session_id, within=self.budget.answer_ms / 1000 + 5, voice=voice_output, **fields
        )
        self._record_turn(kind, question, result)
        silent = self.meaningless and said_nothing(result)
        problems = stream_problems(
            result, voice_input=voice_input, voice_output=voice_output, allow_empty=silent
        )
        problems += budget_problems(result, self.budget, voice_output=voice_output)
        if self.inputs.expect_standin:
            problems += standin_label_problems(result)
        if result.answer is not None and result.answer.audio:
            problems += await self._fetch_audio(result.answer.audio[0])
        self.results[kind] = result
        if problems:
            raise StepFailed("; ".join(problems))
        return result

    async def _ask(
        self, kind: str, question: str, voice_input: bool, voice_output: bool, **fields: Any
    ) -> str:
        # A model whose words mean nothing may say nothing at all: its answer then has no text
        # or speech to check, so the question is asked again (each try is checked and listed).
        attempts = MEANINGLESS_ATTEMPTS if self.meaningless else 1
        for attempt in range(1, attempts + 1):
            result = await self._ask_once(kind, question, voice_input, voice_output, **fields)
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

    async def _voice_question(self) -> str:
        clip = base64.b64encode(self.inputs.voice_question).decode()
        return await self._ask("voice", VOICE_QUESTION, True, True, audio=clip)

    async def _text_question(self) -> str:
        return await self._ask("text", self.text_question, False, True, text=self.text_question)

    @property
    def text_question(self) -> str:
        """TEXT_QUESTION with this run's codeword."""
        return codeword_question(TEXT_QUESTION, self.inputs.codeword)

    async def _follow_up(self) -> str:
        earlier = self.results.get("text")
        if earlier is None or earlier.answer is None:
            raise StepFailed("the earlier text question has no answer to follow up on")
        detail = await self._ask("follow-up", FOLLOW_UP, False, False, text=FOLLOW_UP)
        if self.meaningless:
            self._skip_word_check("follow-up recalls the codeword")
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

    async def _end_session(self) -> str:
        a = self.student
        await self.expect(a, {"action": "endSession", "sessionId": self.session_id}, "sessionEnded")
        await self.expect_error(a, {"action": "startSession", "lectureId": "lec_" + "0" * 32}, "not_found")
        return "ended"

    async def _still_open(self) -> str:
        if not self.student.is_open:
            raise StepFailed(f"the connection did not live on: {self.student.closed_reason}")
        return "open"

    async def _hostile(self) -> None:
        await self.step("bad messages are answered with errors", self._bad_messages)
        await self.step("another identity's ids are not_found", self._foreign_ids)
        await self.step("a non-audio upload is rejected", self._non_audio)
        await self.step("the presigned POST policy holds (key, type, size)", self._upload_policy)

    async def _bad_messages(self) -> str:
        a = self.student
        await self.expect_error(a, "{this is not json", "bad_request")
        await self.expect_error(a, {"action": "dance", "requestId": "bad-1"}, "unknown_action", "bad-1")
        await self.expect_error(
            a, {"action": "query", "sessionId": self.session_id, "requestId": "bad-2"}, "bad_request", "bad-2"
        )
        await self.expect_error(a, {"action": "getLecture", "lectureId": "lec_" + "f" * 32}, "not_found")
        return "bad JSON, unknown action, missing field, unknown id"

    async def _foreign_ids(self) -> str:
        b = await self.open("intruder")
        await self.expect_error(b, {"action": "getLecture", "lectureId": self.lecture_id}, "not_found")
        await self.expect_error(b, {"action": "startSession", "lectureId": self.lecture_id}, "not_found")
        await self.expect_error(
            b,
            {"action": "query", "sessionId": self.session_id, "requestId": "steal-1", "text": "hello?"},
            "not_found",
            "steal-1",
        )
        await self.expect_error(b, {"action": "endSession", "sessionId": self.session_id}, "not_found")
        return "another identity's lecture and session are not_found"

    async def _non_audio(self) -> str:
        a = self.student
        await self.expect_error(
            a,
            {
                "action": "createUpload",
                "kind": "lecture",
                "filename": "notes.txt",
                "contentType": "text/plain",
                "sizeBytes": 100,
            },
            "unsupported_media",
        )
        junk = b"These are lecture notes, not audio.\n" * 200
        got = await self.expect(
            a,
            {
                "action": "createUpload",
                "kind": "lecture",
                "filename": "fake.mp3",
                "contentType": "audio/mpeg",
                "sizeBytes": len(junk),
            },
            "uploadUrl",
        )
        assert isinstance(got.message, UploadUrl)
        response = await a.upload(got.message, junk, "fake.mp3", "audio/mpeg")
        if response.status_code not in (200, 201, 204):
            raise StepFailed(f"presigned POST answered {response.status_code}")
        fake_id = got.message.uploadId
        verdict = await a.wait_type(
            "lecture",
            where=lambda r: bool(
                r.data and r.data.get("lectureId") == fake_id and r.data.get("status") != "pending"
            ),
            within=self.budget.lecture_ready_s,
        )
        assert isinstance(verdict.message, Lecture)
        if verdict.message.status != "rejected" or not verdict.message.reason:
            raise StepFailed(f"a text file uploaded as audio/mpeg was not rejected: {verdict.raw!r}")
        await self.expect_error(a, {"action": "startSession", "lectureId": fake_id}, "lecture_not_ready")
        return f"rejected: {verdict.message.reason}"

    async def _upload_policy(self) -> str:
        a = self.student
        got = await self.expect(
            a,
            {
                "action": "createUpload",
                "kind": "query",
                "filename": "q.mp3",
                "contentType": "audio/mpeg",
                "sizeBytes": 1000,
            },
            "uploadUrl",
        )
        assert isinstance(got.message, UploadUrl)
        up = got.message
        clip = self.inputs.voice_question
        attempts = {
            "another key": (
                UploadUrl(**{**up.model_dump(), "fields": {**up.fields, "key": up.key + ".other"}}),
                clip,
                "audio/mpeg",
            ),
            "another content type": (
                UploadUrl(**{**up.model_dump(), "fields": {**up.fields, "Content-Type": "text/plain"}}),
                clip,
                "text/plain",
            ),
            "over maxBytes": (up, bytes(up.maxBytes + 1), "audio/mpeg"),
        }
        refused = []
        for label, (form, data, ctype) in attempts.items():
            response = await a.upload(form, data, "q.mp3", ctype)
            if response.status_code < 400:
                raise StepFailed(
                    f"an upload to {label} was accepted ({response.status_code}): the policy does not hold"
                )
            refused.append(f"{label} {response.status_code}")
        return "refused: " + ", ".join(refused)

    def _skip_word_check(self, name: str) -> None:
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


async def run_smoke(url: str, mode: str, connect: Connector, inputs: SmokeInputs) -> SmokeReport:
    report = SmokeReport(
        url=url,
        mode=mode,
        budget=inputs.budget,
        expect_standin=inputs.expect_standin,
        model_words=inputs.model_words,
    )
    await Scenario(connect, inputs, report).run()
    return report


def local_connector(url: str, identity: str | None = None) -> Connector:
    """Each label gets its own identity (the first one `identity`, when given)."""
    run = uuid.uuid4().hex[:8]

    async def connect(label: str) -> StackClient:
        who = identity if identity is not None and label == "student" else f"smoke-{label}-{run}"
        return await StackClient.connect(url, identity=who, label=label)

    return connect


def deployed_connector(url: str, access: GuestAccess) -> Connector:
    """Each label gets a fresh Cognito identity; `$connect` is SigV4-signed with its credentials."""
    from synapscribe_ops.smoke.aws_auth import cognito_identity, signed_connect_headers

    async def connect(label: str) -> StackClient:
        ident = await asyncio.to_thread(
            cognito_identity, access.identity_pool_id, access.region, access.guest_role_arn
        )
        headers = signed_connect_headers(url, ident.credentials, access.region)
        return await StackClient.connect(url, headers=headers, label=label)

    return connect
