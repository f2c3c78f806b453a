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
import time
import uuid
from typing import TYPE_CHECKING

from synapscribe.contract import Lecture, Session, UploadUrl
from synapscribe.platform import load_platform

from synapscribe_ops.smoke.client import StackClient
from synapscribe_ops.smoke.hostile import HostileMessages
from synapscribe_ops.smoke.inputs import SmokeInputs
from synapscribe_ops.smoke.questions import Questions
from synapscribe_ops.smoke.report import SmokeReport
from synapscribe_ops.smoke.steps import Connector, StepFailed, StepRunner

if TYPE_CHECKING:
    from synapscribe_ops.smoke.aws_auth import GuestAccess


class Scenario:
    """The smoke test's steps, in order; each step is a method that returns its detail or raises
    StepFailed. What a step learns (the student's connection, the lecture, the session) is kept on
    the scenario for the steps after it; the questions (`questions`) and the hostile messages
    (HostileMessages) are their own units."""

    student: StackClient  # set by the connect step
    lecture_id: str  # set by the upload step
    uploaded_at: float
    session_id: str  # set by the startSession step

    def __init__(self, connect: Connector, inputs: SmokeInputs, report: SmokeReport) -> None:
        self.inputs = inputs
        self.report = report
        self.budget = inputs.budget
        self.platform = load_platform()
        self.steps = StepRunner(connect, inputs, report)
        self.questions = Questions(inputs, report)

    @property
    def text_question(self) -> str:
        """TEXT_QUESTION with this run's codeword."""
        return self.questions.text_question

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.steps.close()

    async def _run(self) -> None:
        step = self.steps.step
        # Each of these needs the one before it: a failure ends the scenario (the report says where).
        for name, body in (
            ("connect", self._connect),
            ("upload a lecture through the presigned POST", self._upload_lecture),
            ("lecture becomes ready", self._lecture_ready),
        ):
            if not await step(name, body):
                return
        await step("getLecture", self._get_lecture)
        if not await step("startSession", self._start_session):
            return
        student, session_id = self.student, self.session_id
        await step("voice question (inline audio)", lambda: self.questions.voice(student, session_id))
        await step("text question (name one term)", lambda: self.questions.text(student, session_id))
        await step(
            "follow-up question (needs the earlier turn)",
            lambda: self.questions.follow_up(student, session_id),
        )
        await HostileMessages(self.steps, student, self.lecture_id, session_id).run()
        await step("endSession", self._end_session)
        await step("the connection lived through everything", self._still_open)

    async def _connect(self) -> str:
        started = time.monotonic()
        self.student = await self.steps.open("student")
        ms = (time.monotonic() - started) * 1000
        if ms > self.budget.connect_ms:
            raise StepFailed(f"connect took {ms:.0f} ms, over the budget of {self.budget.connect_ms:.0f} ms")
        return f"{ms:.0f} ms"

    async def _upload_lecture(self) -> str:
        a = self.student
        data = self.inputs.lecture.read_bytes()
        got = await self.steps.expect(
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
        got = await self.steps.expect(
            self.student, {"action": "getLecture", "lectureId": self.lecture_id}, "lecture"
        )
        assert isinstance(got.message, Lecture)
        if got.message.status != "ready":
            raise StepFailed(f"getLecture says {got.message.status}")
        return "ready"

    async def _start_session(self) -> str:
        got = await self.steps.expect(
            self.student, {"action": "startSession", "lectureId": self.lecture_id}, "session"
        )
        assert isinstance(got.message, Session)
        self.session_id = got.message.sessionId
        return got.message.sessionId

    async def _end_session(self) -> str:
        a = self.student
        await self.steps.expect(a, {"action": "endSession", "sessionId": self.session_id}, "sessionEnded")
        await self.steps.expect_error(
            a, {"action": "startSession", "lectureId": "lec_" + "0" * 32}, "not_found"
        )
        return "ended"

    async def _still_open(self) -> str:
        if not self.student.is_open:
            raise StepFailed(f"the connection did not live on: {self.student.closed_reason}")
        return "open"


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
