"""A lecture as model context: its audio items (audio mode) or its timestamped transcript
(transcript mode), each made once, stored in S3 and reused byte for byte in every turn."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from synapscribe import keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.lecture_errors import (
    LectureIncompleteError,
    LectureUnavailableError,
    TranscriptCutShortError,
    TranscriptTooLongError,
)
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
from synapscribe.agentcore.transcription_job import CLAIMABLE, TRANSCRIBE_SLOT_WAIT_SECONDS, TranscriptionJob
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.audio.formats import not_audio_reason, sniff
from synapscribe.audio.tags import embedded_timeline
from synapscribe.contract import Lecture
from synapscribe.platform import PlatformConfig

log = logging.getLogger(__name__)

ITEM_FORMAT = "mp3"
#: Lecture segments transcribed at once (each also takes an admission slot).
TRANSCRIBE_CONCURRENCY = 4
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
        # Late-bound, so the job always calls this object's make_transcript.
        self.transcription = TranscriptionJob(aws, platform, lambda lecture: self.make_transcript(lecture))

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

    async def run_transcription(self, lecture_id: str, connection_id: str | None) -> None:
        """Claim, transcribe and store a transcript-mode lecture (TranscriptionJob.run)."""
        await self.transcription.run(lecture_id, connection_id)
