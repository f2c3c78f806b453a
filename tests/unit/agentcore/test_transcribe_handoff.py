"""AgentCore's side of the transcription handoff, in-process (the real stand-in app, moto): what
`/transcribe` answers for each lecture, one transcription however often it is started, and an
outcome that cannot be recorded is reported instead of vanishing."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from synapscribe import keys
from synapscribe.agentcore.lectures import LectureContexts, transcribe_answer
from synapscribe.agentcore.transcription_job import TRANSCRIBE_LEASE_SECONDS

from .pipeline_rig import OWNER, Rig

LEC = "lec_0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("lecture", "code", "start", "says"),
    [
        (None, 404, False, "not found"),
        ({"status": "ready", "contextMode": "audio"}, 409, False, "in audio mode"),
        ({"status": "pending"}, 409, False, "not planned for transcript mode"),
        ({"status": "rejected", "contextMode": "transcript"}, 409, False, "rejected"),
        ({"status": "ready", "contextMode": "transcript"}, 200, False, "ready"),
        ({"status": "transcribing", "contextMode": "transcript"}, 202, True, "transcribing"),
        ({"status": "pending", "contextMode": "transcript"}, 202, True, "transcribing"),
    ],
)
def test_transcribe_answers_from_the_stored_lecture(
    lecture: dict[str, Any] | None, code: int, start: bool, says: str
) -> None:
    answer = transcribe_answer(LEC, None if lecture is None else {"lectureId": LEC, **lecture})
    assert (answer.status_code, answer.start) == (code, start)
    assert says in json.dumps(answer.body)


def _transcribing(rig: Rig, **extra: Any) -> str:
    lecture_id = rig.lecture["lectureId"]
    rig.store.update_lecture(lecture_id, {"status": "transcribing", "contextMode": "transcript", **extra})
    return lecture_id


def _transcriptions(rig: Rig) -> int:
    """Chat completions that were lecture-segment transcriptions."""
    return sum(1 for b in rig.vllm_bodies if "ranscribe" in json.dumps(b["messages"][-1]))


def _lectures(rig: Rig, connection: str) -> list[dict[str, Any]]:
    return [m for m in rig.gateway.messages.get(connection, []) if m["type"] in ("lecture", "error")]


async def test_started_three_times_at_once_transcribes_once(make_rig: Any) -> None:
    async with make_rig() as rig:
        lecture_id = _transcribing(rig)
        lectures = rig.deps.lectures
        # A second AgentCore instance (its own memory) sharing the same DynamoDB and S3.
        other = LectureContexts(lectures.aws, lectures.vllm, lectures.admission, lectures.platform)
        await asyncio.gather(
            lectures.run_transcription(lecture_id, "c-up"),
            lectures.run_transcription(lecture_id, "c-up"),
            other.run_transcription(lecture_id, "c-up"),
        )
        segments = len(
            json.loads(
                rig.s3.get_object(Bucket=rig.bucket, Key=keys.transcript_key(lecture_id))["Body"].read()
            )["segments"]
        )
        assert _transcriptions(rig) == segments == 2
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready" and stored["contextMode"] == "transcript"
        assert [m["status"] for m in _lectures(rig, "c-up")] == ["ready"]
        # Started again once ready: nothing happens.
        await other.run_transcription(lecture_id, "c-up")
        assert _transcriptions(rig) == 2 and len(_lectures(rig, "c-up")) == 1


async def test_a_live_claim_is_respected_and_an_expired_one_taken_over(make_rig: Any) -> None:
    async with make_rig() as rig:
        now = rig.store.now()
        lecture_id = _transcribing(rig, transcribeLeaseUntil=now + 60, transcribeWorker="elsewhere")
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        assert _transcriptions(rig) == 0 and _lectures(rig, "c-up") == []
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "transcribing"
        assert stored["transcribeWorker"] == "elsewhere"

        rig.store.update_lecture(lecture_id, {"transcribeLeaseUntil": now - 1})  # that worker died
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready" and _transcriptions(rig) == 2
        assert stored["transcribeWorker"] == rig.deps.lectures.transcription.worker
        assert stored["transcribeLeaseUntil"] >= now + TRANSCRIBE_LEASE_SECONDS


async def test_our_own_claim_left_by_a_retried_write_is_resumed_once(make_rig: Any) -> None:
    """A claim whose write applied but whose response was lost is retried by the SDK and then fails
    its condition on our own lease: the lecture must not stay `transcribing` with nobody on it."""
    async with make_rig() as rig:
        lectures = rig.deps.lectures
        now = rig.store.now()
        lecture_id = _transcribing(
            rig,
            transcribeLeaseUntil=now + TRANSCRIBE_LEASE_SECONDS,
            transcribeWorker=lectures.transcription.worker,
        )
        # Two handoffs at once: one resumes the claim, the other sees it running here.
        await asyncio.gather(
            lectures.run_transcription(lecture_id, "c-up"), lectures.run_transcription(lecture_id, "c-up")
        )
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready", stored
        assert _transcriptions(rig) == 2 and [m["status"] for m in _lectures(rig, "c-up")] == ["ready"]


async def test_audio_mode_and_rejected_lectures_are_never_transcribed(make_rig: Any) -> None:
    async with make_rig() as rig:
        lecture_id = rig.lecture["lectureId"]  # ready, audio mode
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        rig.store.update_lecture(lecture_id, {"status": "rejected", "contextMode": "transcript"})
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        assert rig.vllm_bodies == [] and _lectures(rig, "c-up") == []
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "rejected"


async def test_a_stored_transcript_is_reused_not_made_again(make_rig: Any) -> None:
    async with make_rig() as rig:
        lecture_id = _transcribing(rig)
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        assert _transcriptions(rig) == 2
        # As if the worker had died after storing the transcript, before recording `ready`.
        _transcribing(rig, transcribeLeaseUntil=0)
        fresh = LectureContexts(rig.deps.aws, rig.deps.vllm, rig.deps.admission, rig.deps.platform)
        await fresh.run_transcription(lecture_id, "c-up")
        assert _transcriptions(rig) == 2
        stored = rig.store.get_lecture(lecture_id, OWNER)
        assert stored is not None and stored["status"] == "ready"
        assert [m["status"] for m in _lectures(rig, "c-up")] == ["ready", "ready"]


async def test_status_changed_under_it_is_logged_and_pushed(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_rig() as rig:
        lecture_id = _transcribing(rig)
        lectures = rig.deps.lectures
        real = lectures.make_transcript

        async def regressed(lecture: dict[str, Any]) -> dict[str, Any]:
            made = await real(lecture)
            # What the old edge did when its handoff timed out.
            rig.store.update_lecture(lecture_id, {"status": "pending"}, "transcribing")
            return made

        monkeypatch.setattr(lectures, "make_transcript", regressed)
        with caplog.at_level(logging.ERROR, logger="synapscribe.agentcore.transcription_job"):
            await lectures.run_transcription(lecture_id, "c-up")
        [message] = _lectures(rig, "c-up")
        assert message["type"] == "error" and message["code"] == "internal"
        assert lecture_id in message["message"] and "it is pending" in message["message"]
        assert any("not recorded" in r.getMessage() and lecture_id in r.getMessage() for r in caplog.records)

        # Rejected meanwhile (the object was replaced): the client hears the rejection that holds.
        async def rejected(lecture: dict[str, Any]) -> dict[str, Any]:
            made = await real(lecture)
            rig.store.update_lecture(lecture_id, {"status": "rejected", "reason": "replaced"}, "transcribing")
            return made

        _transcribing(rig, transcribeLeaseUntil=0)
        monkeypatch.setattr(lectures, "make_transcript", rejected)
        monkeypatch.setattr(lectures.transcription, "_stored_transcript", _none)
        await lectures.run_transcription(lecture_id, "c-up2")
        assert _lectures(rig, "c-up2") == [
            {
                "type": "lecture",
                "lectureId": lecture_id,
                "status": "rejected",
                "durationSeconds": 90.0,
                "reason": "replaced",
            }
        ]


async def _none(lecture_id: str) -> None:
    return None


async def test_what_is_written_after_a_concurrent_delete_is_removed(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deleteLecture during transcription (issue 18): the objects AgentCore writes after the
    delete are removed by AgentCore itself, and the outcome is not recorded."""
    async with make_rig() as rig:
        lecture_id = _transcribing(rig)
        aws = rig.deps.lectures.aws
        put = aws.put

        async def put_then_deleted(key: str, *args: Any, **kwargs: Any) -> None:
            await put(key, *args, **kwargs)
            rig.store.delete_lecture(lecture_id, OWNER)  # the delete wins the race

        monkeypatch.setattr(aws, "put", put_then_deleted)
        await rig.deps.lectures.run_transcription(lecture_id, "c-up")
        left = [o["Key"] for o in rig.s3.list_objects_v2(Bucket=rig.bucket).get("Contents", [])]
        assert not [k for k in left if lecture_id in k and not k.startswith("lectures/")], left
        assert rig.store.get_lecture(lecture_id, OWNER) is None
