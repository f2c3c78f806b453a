"""A lecture as model context: its audio items (audio mode) or its timestamped transcript
(transcript mode), each made once, stored in S3 and reused byte for byte in every turn."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import socket
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from synapscribe import keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.media import (
    MediaError,
    check_complete,
    cut_mp3,
    duration_seconds,
    mp3_samples,
    split_mp3,
    to_mp3,
)
from synapscribe.agentcore.media_refs import item_uuid
from synapscribe.agentcore.prompts import LectureAudioItem, TranscriptSegment, lecture_transcript_message
from synapscribe.agentcore.vllm_client import UpstreamError, VllmClient
from synapscribe.audio.formats import not_audio_reason, sniff
from synapscribe.audio.tags import embedded_timeline
from synapscribe.contract import ContractError, ErrorCode, ErrorMessage, Lecture
from synapscribe.platform import PlatformConfig
from synapscribe.store import SWEEP_ATTRIBUTE

log = logging.getLogger(__name__)

ITEM_FORMAT = "mp3"
#: Lecture segments transcribed at once (each also takes an admission slot).
TRANSCRIBE_CONCURRENCY = 4
#: The longest a lecture waits for model slots (it is not interactive).
TRANSCRIBE_SLOT_WAIT_SECONDS = 600.0
#: How long an AgentCore holds its claim on a lecture's transcription: another instance (or a
#: restarted one) may take the lecture over only once a claim is this old, so it never runs twice.
TRANSCRIBE_LEASE_SECONDS = int(TRANSCRIBE_SLOT_WAIT_SECONDS) + 300
#: Statuses from which a transcript-mode lecture may be claimed (`pending`: an older edge).
CLAIMABLE = ("pending", "transcribing")
#: A segment whose transcription stays cut short is split in two, down to pieces this short.
MIN_SPLIT_SECONDS = 5.0


@dataclass(frozen=True)
class TranscribeAnswer:
    """What `POST /v1/lectures/{id}/transcribe` answers, and whether it starts the work."""

    status_code: int
    body: dict[str, Any]
    start: bool = False


def transcribe_answer(lecture_id: str, lecture: dict[str, Any] | None) -> TranscribeAnswer:
    """Decide from the stored lecture alone (no work): 404 unknown, 409 not a transcript-mode
    lecture or rejected, 200 already ready, 202 pending/transcribing (the work starts)."""
    if lecture is None:
        return TranscribeAnswer(404, {"detail": f"lecture {lecture_id} not found"})
    status, mode = lecture.get("status"), lecture.get("contextMode")
    if status == "rejected":
        return TranscribeAnswer(409, {"detail": f"lecture {lecture_id} is rejected; it is not transcribed"})
    if mode != "transcript":
        what = f"in {mode} mode" if mode else f"{status} and not planned for transcript mode"
        return TranscribeAnswer(
            409, {"detail": f"lecture {lecture_id} is {what}; only a transcript-mode lecture is transcribed"}
        )
    if status == "ready":
        return TranscribeAnswer(200, {"lectureId": lecture_id, "status": status})
    if status in CLAIMABLE:
        return TranscribeAnswer(202, {"lectureId": lecture_id, "status": "transcribing"}, start=True)
    return TranscribeAnswer(409, {"detail": f"lecture {lecture_id} is {status}; it is not transcribed"})


class LectureUnavailableError(Exception):
    """The lecture's recording or transcript is missing or unreadable (the message says which)."""


class TranscriptTooLongError(Exception):
    """The lecture's transcript, counted by the model's tokenizer, does not fit the context."""


class TranscriptCutShortError(Exception):
    """A part of the lecture stayed cut short at max_tokens even when split (the message says where)."""


class LectureIncompleteError(ContractError):
    """Less of the recording could be read as audio than its measured duration: serving it would
    silently drop the rest, so the lecture is rejected instead (the message says why)."""

    def __init__(self, lecture_id: str, detail: str) -> None:
        super().__init__(ErrorCode.UNSUPPORTED_MEDIA, f"lecture {lecture_id} cannot be used: {detail}")
        self.detail = detail


def lecture_audio_items(
    made: Sequence[tuple[float, float, bytes]], lecture_id: str | None = None
) -> list[LectureAudioItem]:
    """The prompt's items of cut MP3 items (start, end, bytes): each spans the longer of its cut
    span and the decoder's view (lead frames included), and carries its exact decoded length so the
    planner counts its tokens as the engine does, and its uuid (media_refs.item_uuid) when the
    lecture is named."""
    items = []
    for index, (start, end, data) in enumerate(made):
        seconds = max(end - start, duration_seconds(data, ITEM_FORMAT))
        b64 = base64.b64encode(data).decode("ascii")
        uuid_ = item_uuid(lecture_id, index, data) if lecture_id is not None else None
        items.append(LectureAudioItem(start, start + seconds, b64, ITEM_FORMAT, _item_samples(data), uuid_))
    return items


def _item_samples(data: bytes) -> tuple[int, int] | None:
    """An item's exact decoded length, so the planner counts its tokens as the engine does; None
    (the planner then takes its upper bound from the item's seconds) if it does not parse as MP3."""
    try:
        return mp3_samples(data)
    except MediaError:
        return None


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


@dataclass(frozen=True)
class LectureTranscript:
    segments: tuple[TranscriptSegment, ...]
    #: the transcript message's text counted by the model server's tokenizer (None: not counted)
    tokens: int | None


def transcribe_max_tokens(seconds: float, platform: PlatformConfig) -> int:
    """Room for the transcript of `seconds` of speech: twice the usual rate, plus slack."""
    return math.ceil(seconds / 60 * platform.audio.transcript_tokens_per_minute * 2) + 64


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class LectureContexts:
    def __init__(
        self,
        aws: AwsIo,
        vllm: VllmClient,
        admission: adm.Admission,
        platform: PlatformConfig,
        cache_size: int = 16,
    ) -> None:
        self.aws = aws
        self.vllm = vllm
        self.admission = admission
        self.platform = platform
        self._items: _Lru = _Lru(cache_size)
        self._transcripts: _Lru = _Lru(cache_size)
        # A lecture's lock lives while someone holds or waits on it, so the map does not grow.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        #: who holds a claim (stored on the lecture item for operators)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        #: lectures this process is transcribing now (a claim of ours nobody here runs is stale)
        self._transcribing: set[str] = set()

    def _lock(self, lecture_id: str) -> asyncio.Lock:
        return self._locks.setdefault(lecture_id, asyncio.Lock())

    # ------------------------------------------------------------------ audio items

    async def _cut(self, source: bytes) -> list[tuple[float, float, bytes]]:
        """The recording as items; MP3 is cut as it is, other formats after ffmpeg converts them."""
        fmt = sniff(source)
        if fmt is None:
            raise LectureUnavailableError(f"the lecture recording is refused: {not_audio_reason(source)}")
        timeline = embedded_timeline(source)
        mp3 = source if fmt == "mp3" else await to_mp3(source)
        try:
            cut = await asyncio.to_thread(cut_mp3, mp3, self.platform.audio.max_item_seconds, timeline)
        except MediaError as exc:
            raise LectureUnavailableError(f"the lecture recording cannot be cut into items: {exc}") from None
        return [(c.start, c.end, c.data) for c in cut]

    async def audio_items(
        self, lecture: dict[str, Any], spans: Spans | None = None
    ) -> list[LectureAudioItem]:
        """The lecture's items (at most audio.max_item_seconds each), made once and stored."""
        lecture_id = lecture["lectureId"]
        cached = self._items.get(lecture_id)
        if cached is not None:
            return list(cached)
        async with self._lock(lecture_id):
            cached = self._items.get(lecture_id)
            if cached is not None:
                return list(cached)
            prefix = keys.segments_prefix(lecture_id, self.platform)
            manifest_raw = await self.aws.get(prefix + "manifest.json", spans)
            if manifest_raw is not None:
                manifest = json.loads(manifest_raw)
                blobs = await asyncio.gather(*(self.aws.get(s["key"], spans) for s in manifest["items"]))
                if any(b is None for b in blobs):
                    raise LectureUnavailableError(f"lecture {lecture_id}: a stored segment is missing")
                made = [
                    (float(s["start"]), float(s["end"]), b)
                    for s, b in zip(manifest["items"], blobs, strict=True)
                    if b is not None
                ]
                await self._check_complete(lecture, made, spans)
            else:
                source = (
                    await self.aws.get(str(lecture.get("key", "")), spans) if lecture.get("key") else None
                )
                if source is None:
                    raise LectureUnavailableError(
                        f"lecture {lecture_id}: the recording is missing from storage"
                    )
                made = await self._cut(source)
                await self._check_complete(lecture, made, spans)
                entries = []
                written = [prefix + "manifest.json"]
                for i, (start, end, data) in enumerate(made):
                    key = f"{prefix}{i:04d}.{ITEM_FORMAT}"
                    await self.aws.put(key, data, "audio/mpeg", spans)
                    written.append(key)
                    entries.append({"key": key, "start": round(start, 3), "end": round(end, 3)})
                manifest = {"lectureId": lecture_id, "format": ITEM_FORMAT, "items": entries}
                await self.aws.put(
                    prefix + "manifest.json", json.dumps(manifest).encode(), "application/json", spans
                )
                await self._unless_deleted(lecture_id, written)
            items = await asyncio.to_thread(lecture_audio_items, made, lecture_id)
            self._items.remember(lecture_id, tuple(items))
            return items

    async def _unless_deleted(self, lecture_id: str, written: list[str]) -> None:
        """A deleteLecture that ran while these were made removed what existed then: what was
        written after it is removed here, and LectureUnavailableError ends the work."""
        if await self.aws.call(self.aws.store.get_lecture, lecture_id, None) is not None:
            return
        await self.aws.delete(written)
        self._items.pop(lecture_id, None)
        log.info("lecture %s was deleted meanwhile: its %d new objects removed", lecture_id, len(written))
        raise LectureUnavailableError(f"lecture {lecture_id} was deleted")

    async def _check_complete(
        self, lecture: dict[str, Any], made: list[tuple[float, float, bytes]], spans: Spans | None
    ) -> None:
        """Refuse items that cover less than the lecture's measured duration: the lecture is set
        `rejected` with the reason (when it was `ready`), logged, and LectureIncompleteError raised."""
        lecture_id = lecture["lectureId"]
        measured = lecture.get("durationSeconds")
        if measured is None:
            log.warning("lecture %s has no measured duration; its items are not checked", lecture_id)
            return
        covered = sum(end - start for start, end, _ in made)
        try:
            check_complete(covered, float(measured))
        except MediaError as exc:
            detail = str(exc)
        else:
            return
        log.error("lecture %s: %s; rejecting it rather than serving it truncated", lecture_id, detail)
        reason = f"The lecture could not be read completely: {detail}."
        updated = await self.aws.call(
            self.aws.store.update_lecture, lecture_id, {"status": "rejected", "reason": reason}, "ready"
        )
        if updated is not None and updated.get("connectionId"):
            # The uploader learns it too, if still connected (the asker gets an error).
            await self.aws.push(str(updated["connectionId"]), Lecture.from_item(updated), spans)
        raise LectureIncompleteError(lecture_id, detail)

    # ------------------------------------------------------------------ transcript

    async def transcript(self, lecture: dict[str, Any], spans: Spans | None = None) -> LectureTranscript:
        lecture_id = lecture["lectureId"]
        cached = self._transcripts.get(lecture_id)
        if cached is not None:
            return cast(LectureTranscript, cached)
        key = str(lecture.get("transcriptKey") or keys.transcript_key(lecture_id, self.platform))
        raw = await self.aws.get(key, spans)
        if raw is None:
            raise LectureUnavailableError(f"lecture {lecture_id}: the transcript is missing from storage")
        data = json.loads(raw)
        segments = tuple(
            TranscriptSegment(float(s["start"]), float(s["end"]), str(s["text"])) for s in data["segments"]
        )
        tokens = data.get("lectureTokens")
        transcript = LectureTranscript(segments, int(tokens) if isinstance(tokens, int) else None)
        return cast(LectureTranscript, self._transcripts.remember(lecture_id, transcript))

    async def make_transcript(self, lecture: dict[str, Any]) -> dict[str, Any]:
        """Transcribe the lecture segment by segment with the model; store and return the JSON."""
        lecture_id = lecture["lectureId"]
        items = await self.audio_items(lecture)
        gate = asyncio.Semaphore(min(TRANSCRIBE_CONCURRENCY, self.admission.limit))
        # A lecture waits for slots much longer than a question would (it is not interactive).
        wait = max(self.admission.timeout, TRANSCRIBE_SLOT_WAIT_SECONDS)

        async def one(item: LectureAudioItem) -> list[TranscriptSegment]:
            async with gate, self.admission.slot(adm.LECTURE, timeout=wait):
                return await self._transcribe_span(base64.b64decode(item.b64), item.fmt, item.start, item.end)

        parts = await asyncio.gather(*(one(i) for i in items))
        segments = [segment for part in parts for segment in part]
        # Counted once by the model's own tokenizer, so every request's budget is exact for it.
        lecture_tokens = await self.vllm.count_tokens(lecture_transcript_message(segments)["content"])
        if lecture_tokens > self.platform.lecture_token_budget:
            raise TranscriptTooLongError(
                f"its transcript is {lecture_tokens} tokens; at most {self.platform.lecture_token_budget} fit "
                f"the context of {self.platform.vllm.max_model_len} tokens. Split the recording into parts"
            )
        transcript = {
            "lectureId": lecture_id,
            "durationSeconds": round(items[-1].end, 3) if items else 0.0,
            "model": self.vllm.model,
            "lectureTokens": lecture_tokens,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in segments
            ],
        }
        key = keys.transcript_key(lecture_id, self.platform)
        await self.aws.put(key, json.dumps(transcript, ensure_ascii=False).encode(), "application/json")
        await self._unless_deleted(lecture_id, [key])
        self._transcripts.pop(lecture_id, None)
        return transcript

    async def _transcribe_span(
        self, data: bytes, fmt: str, start: float, end: float
    ) -> list[TranscriptSegment]:
        """The span's transcript. One the model cuts short even with more room is split in two
        halves at frame boundaries and each transcribed on its own, down to MIN_SPLIT_SECONDS;
        past that TranscriptCutShortError, never a shortened transcript."""
        seconds = end - start
        result = await self.vllm.transcription(
            data, fmt, seconds, transcribe_max_tokens(seconds, self.platform)
        )
        if result.complete:
            return [TranscriptSegment(start, end, result.text)]
        if seconds / 2 < MIN_SPLIT_SECONDS or fmt != "mp3":
            raise TranscriptCutShortError(
                f"the model's transcript of {_clock(start)}-{_clock(end)} stopped at its "
                f"{result.max_tokens}-token limit even in a {seconds:.0f} s piece"
            )
        log.info("%.1f s at %.1f s: transcript cut short; transcribing it in two halves", seconds, start)
        halves = await asyncio.to_thread(split_mp3, data, 2)
        out: list[TranscriptSegment] = []
        for half in halves:
            out.extend(await self._transcribe_span(half.data, fmt, start + half.start, start + half.end))
        return out

    # ------------------------------------------------------------------ the transcription job

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
                transcript = await self.make_transcript(lecture)
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

    async def run_transcription(self, lecture_id: str, connection_id: str | None) -> None:
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
