"""The smoke test's hostile steps: bad messages, another identity's ids, a non-audio upload and
a presigned POST that breaks its policy must each be refused with the contract's error, on a
connection that lives on."""

from __future__ import annotations

from synapscribe.contract import Lecture, UploadUrl

from synapscribe_ops.smoke.client import StackClient
from synapscribe_ops.smoke.steps import StepFailed, StepRunner


class HostileMessages:
    """The hostile steps against the student's lecture and session (each recorded as its own step)."""

    def __init__(self, steps: StepRunner, student: StackClient, lecture_id: str, session_id: str) -> None:
        self.steps = steps
        self.student = student
        self.lecture_id = lecture_id
        self.session_id = session_id

    async def run(self) -> None:
        await self.steps.step("bad messages are answered with errors", self._bad_messages)
        await self.steps.step("another identity's ids are not_found", self._foreign_ids)
        await self.steps.step("a non-audio upload is rejected", self._non_audio)
        await self.steps.step("the presigned POST policy holds (key, type, size)", self._upload_policy)

    async def _bad_messages(self) -> str:
        a = self.student
        await self.steps.expect_error(a, "{this is not json", "bad_request")
        await self.steps.expect_error(a, {"action": "dance", "requestId": "bad-1"}, "unknown_action", "bad-1")
        await self.steps.expect_error(
            a, {"action": "query", "sessionId": self.session_id, "requestId": "bad-2"}, "bad_request", "bad-2"
        )
        await self.steps.expect_error(
            a, {"action": "getLecture", "lectureId": "lec_" + "f" * 32}, "not_found"
        )
        return "bad JSON, unknown action, missing field, unknown id"

    async def _foreign_ids(self) -> str:
        b = await self.steps.open("intruder")
        await self.steps.expect_error(b, {"action": "getLecture", "lectureId": self.lecture_id}, "not_found")
        await self.steps.expect_error(
            b, {"action": "startSession", "lectureId": self.lecture_id}, "not_found"
        )
        await self.steps.expect_error(
            b,
            {"action": "query", "sessionId": self.session_id, "requestId": "steal-1", "text": "hello?"},
            "not_found",
            "steal-1",
        )
        await self.steps.expect_error(b, {"action": "endSession", "sessionId": self.session_id}, "not_found")
        return "another identity's lecture and session are not_found"

    async def _non_audio(self) -> str:
        a = self.student
        await self.steps.expect_error(
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
        got = await self.steps.expect(
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
            within=self.steps.inputs.budget.lecture_ready_s,
        )
        assert isinstance(verdict.message, Lecture)
        if verdict.message.status != "rejected" or not verdict.message.reason:
            raise StepFailed(f"a text file uploaded as audio/mpeg was not rejected: {verdict.raw!r}")
        await self.steps.expect_error(
            a, {"action": "startSession", "lectureId": fake_id}, "lecture_not_ready"
        )
        return f"rejected: {verdict.message.reason}"

    async def _upload_policy(self) -> str:
        a = self.student
        got = await self.steps.expect(
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
        clip = self.steps.inputs.voice_question
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
