"""A transcript-mode lecture's transcription job: claimed on the lecture item (one worker at a
time, with a lease another instance may take over once it is old), transcribed, recorded `ready` or
`rejected`, and the uploader told. Safe to start any number of times, on any instance."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from synapscribe import keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo
from synapscribe.agentcore.lecture_errors import (
    LectureIncompleteError,
    LectureUnavailableError,
    TranscriptCutShortError,
    TranscriptTooLongError,
)
from synapscribe.agentcore.media import MediaError
from synapscribe.agentcore.vllm_client import UpstreamError
from synapscribe.contract import ErrorCode, ErrorMessage, Lecture
from synapscribe.platform import PlatformConfig
from synapscribe.store import SWEEP_ATTRIBUTE

log = logging.getLogger(__name__)

#: The longest a lecture waits for model slots (it is not interactive).
TRANSCRIBE_SLOT_WAIT_SECONDS = 600.0
#: How long an AgentCore holds its claim on a lecture's transcription: another instance (or a
#: restarted one) may take the lecture over only once a claim is this old, so it never runs twice.
TRANSCRIBE_LEASE_SECONDS = int(TRANSCRIBE_SLOT_WAIT_SECONDS) + 300
#: Statuses from which a transcript-mode lecture may be claimed (`pending`: an older edge).
CLAIMABLE = ("pending", "transcribing")


class TranscriptionJob:
    """Runs the transcription of transcript-mode lectures for one AgentCore; `make_transcript`
    makes (and stores) a lecture's transcript."""

    def __init__(
        self,
        aws: AwsIo,
        platform: PlatformConfig,
        make_transcript: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> None:
        self.aws = aws
        self.platform = platform
        self._make_transcript = make_transcript
        #: who holds a claim (stored on the lecture item for operators)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        #: lectures this process is transcribing now (a claim of ours nobody here runs is stale)
        self._transcribing: set[str] = set()

    def _claim(self, lecture_id: str) -> dict[str, Any] | None:
        """Take the lecture's transcription (status `transcribing`) unless another worker holds an
        unexpired claim or it is no longer a claimable transcript-mode lecture; None then."""
        store = self.aws.store
        now = store.now()
        condition = (
            Attr("status").is_in(list(CLAIMABLE))
            & Attr("contextMode").eq("transcript")
            & (Attr("transcribeLeaseUntil").not_exists() | Attr("transcribeLeaseUntil").lt(now))
        )
        try:
            store.lectures.update_item(
                Key={"lectureId": lecture_id},
                # The status and the sweeper's index key together (store.SWEEP_ATTRIBUTE).
                UpdateExpression="SET #st = :st, #sd = :st, #lu = :lu, #wk = :wk, #up = :up",
                ExpressionAttributeNames={
                    "#st": "status",
                    "#sd": SWEEP_ATTRIBUTE,
                    "#lu": "transcribeLeaseUntil",
                    "#wk": "transcribeWorker",
                    "#up": "updatedAt",
                },
                ExpressionAttributeValues={
                    ":st": "transcribing",
                    ":lu": now + TRANSCRIBE_LEASE_SECONDS,
                    ":wk": self.worker,
                    ":up": now,
                },
                ConditionExpression=condition,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # The SDK retries a write whose response was lost (seen: moto's 500 after applying it):
            # the retry then fails its condition on our own claim. Ours, and not running here: take it.
            current = store.get_lecture(lecture_id, None)
            if (
                current is not None
                and current.get("transcribeWorker") == self.worker
                and current.get("status") == "transcribing"
            ):  # run_transcription: not running here
                log.warning(
                    "lecture %s: our own claim came back as taken (a retried write); resuming", lecture_id
                )
                return current
            return None
        return store.get_lecture(lecture_id, None)

    async def _stored_transcript(self, lecture_id: str) -> dict[str, Any] | None:
        """A transcript an earlier worker stored before it could record `ready` (then it is reused,
        never made twice)."""
        raw = await self.aws.get(keys.transcript_key(lecture_id, self.platform))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("lectureId") != lecture_id or "segments" not in data:
            return None
        return data

    async def _transcribe_outcome(self, lecture: dict[str, Any]) -> dict[str, Any]:
        """The lecture's final fields: `ready` with its transcript, or `rejected` with a reason."""
        lecture_id = lecture["lectureId"]
        started = time.perf_counter()
        try:
            transcript = await self._stored_transcript(lecture_id)
            if transcript is not None:
                log.info("lecture %s: reusing the transcript already stored", lecture_id)
            else:
                transcript = await self._make_transcript(lecture)
        except (UpstreamError, adm.BusyError) as exc:
            reason = f"The lecture could not be transcribed ({exc}). Upload it again in a few minutes."
            return {"status": "rejected", "reason": reason}
        except TranscriptTooLongError as exc:
            return {"status": "rejected", "reason": f"The lecture is too long: {exc}."}
        except TranscriptCutShortError as exc:
            log.error(
                "lecture %s: %s; rejecting it rather than storing a truncated transcript", lecture_id, exc
            )
            reason = (
                f"The lecture could not be transcribed completely: {exc}. Check that the recording is "
                "clear speech and upload it again, or split it into shorter parts."
            )
            return {"status": "rejected", "reason": reason}
        except LectureIncompleteError as exc:
            return {
                "status": "rejected",
                "reason": f"The lecture could not be read completely: {exc.detail}.",
            }
        except (LectureUnavailableError, MediaError) as exc:
            return {"status": "rejected", "reason": f"The lecture could not be transcribed: {exc}."}
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("internal error %s transcribing lecture %s", error_id, lecture_id)
            return {
                "status": "rejected",
                "reason": f"The lecture could not be transcribed (error id {error_id}). Upload it again.",
            }
        log.info(
            "lecture %s: transcribed %d segments in %.1f s",
            lecture_id,
            len(transcript["segments"]),
            time.perf_counter() - started,
        )
        return {
            "status": "ready",
            "contextMode": "transcript",
            "transcriptKey": keys.transcript_key(lecture_id, self.platform),
            "durationSeconds": lecture.get("durationSeconds") or transcript["durationSeconds"],
        }

    async def run(self, lecture_id: str, connection_id: str | None) -> None:
        """Claim, transcribe and store a transcript-mode lecture, set it `ready` (or `rejected`)
        and tell the uploader. Safe to start any number of times, on any instance."""
        if lecture_id in self._transcribing:
            log.info("lecture %s: already being transcribed here; not started again", lecture_id)
            return
        self._transcribing.add(lecture_id)
        try:
            await self._run_claimed(lecture_id, connection_id)
        finally:
            self._transcribing.discard(lecture_id)

    async def _run_claimed(self, lecture_id: str, connection_id: str | None) -> None:
        store = self.aws.store
        lecture = await self.aws.call(self._claim, lecture_id)
        if lecture is None:
            current = await self.aws.call(store.get_lecture, lecture_id, None)
            if current is None:
                log.warning("lecture %s: gone before its transcription started", lecture_id)
            elif current.get("status") == "transcribing":
                log.info(
                    "lecture %s: already being transcribed by %s; not started again",
                    lecture_id,
                    current.get("transcribeWorker"),
                )
            else:
                log.info("lecture %s is %s; not transcribed", lecture_id, current.get("status"))
            return
        connection_id = connection_id or lecture.get("connectionId")
        fields = await self._transcribe_outcome(lecture)
        updated = await self.aws.call(store.update_lecture, lecture_id, fields, "transcribing")
        if updated is None:
            await self._outcome_lost(lecture_id, fields, connection_id)
            return
        if connection_id:
            await self.aws.push(connection_id, Lecture.from_item(updated))

    async def _outcome_lost(self, lecture_id: str, fields: dict[str, Any], connection_id: str | None) -> None:
        """The lecture changed while it was transcribed, so the outcome was not recorded: say so in
        the log and to the uploader instead of dropping it silently."""
        current = await self.aws.call(self.aws.store.get_lecture, lecture_id, None)
        now = "gone" if current is None else str(current.get("status"))
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "lecture %s: transcription ended %s but the lecture is %s now, so that was not recorded "
            "(error id %s)",
            lecture_id,
            fields["status"],
            now,
            error_id,
        )
        if not connection_id:
            return
        if current is not None and current.get("status") in ("ready", "rejected"):
            # Another worker or the edge settled it: the client learns the state that holds.
            await self.aws.push(connection_id, Lecture.from_item(current))
            return
        await self.aws.push(
            connection_id,
            ErrorMessage(
                code=ErrorCode.INTERNAL,
                message=(
                    f"Lecture {lecture_id} was transcribed but changed meanwhile (it is {now}); "
                    f"upload it again (error id {error_id})."
                ),
            ),
        )
