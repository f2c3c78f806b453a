"""A lecture as model context: its audio items (audio mode) or its timestamped transcript
(transcript mode), each made once, stored in S3 and reused byte for byte in every turn."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from synapscribe import audiogen, keys
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo, Spans
from synapscribe.agentcore.media import MediaError, cut_mp3, duration_seconds, sniff_format, to_mp3
from synapscribe.agentcore.prompts import LectureAudioItem, TranscriptSegment, lecture_transcript_message
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.platform import PlatformConfig

log = logging.getLogger(__name__)

ITEM_FORMAT = "mp3"
#: Lecture segments transcribed at once (each also takes an admission slot).
TRANSCRIBE_CONCURRENCY = 4


class LectureUnavailableError(Exception):
    """The lecture's recording or transcript is missing or unreadable (the message says which)."""


class TranscriptTooLongError(Exception):
    """The lecture's transcript, counted by the model's tokenizer, does not fit the context."""


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
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, lecture_id: str) -> asyncio.Lock:
        return self._locks.setdefault(lecture_id, asyncio.Lock())

    # ------------------------------------------------------------------ audio items

    async def _cut(self, source: bytes) -> list[tuple[float, float, bytes]]:
        fmt = sniff_format(source)
        if fmt is None:
            raise LectureUnavailableError("the lecture recording is not audio in a known format")
        timeline = audiogen.embedded_timeline(source)
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
            else:
                source = (
                    await self.aws.get(str(lecture.get("key", "")), spans) if lecture.get("key") else None
                )
                if source is None:
                    raise LectureUnavailableError(
                        f"lecture {lecture_id}: the recording is missing from storage"
                    )
                made = await self._cut(source)
                entries = []
                for i, (start, end, data) in enumerate(made):
                    key = f"{prefix}{i:04d}.{ITEM_FORMAT}"
                    await self.aws.put(key, data, "audio/mpeg", spans)
                    entries.append({"key": key, "start": round(start, 3), "end": round(end, 3)})
                manifest = {"lectureId": lecture_id, "format": ITEM_FORMAT, "items": entries}
                await self.aws.put(
                    prefix + "manifest.json", json.dumps(manifest).encode(), "application/json", spans
                )
            items = []
            for start, end, data in made:
                # The item's token count uses the longer of the cut span and the decoder's view.
                seconds = max(end - start, duration_seconds(data, ITEM_FORMAT))
                items.append(
                    LectureAudioItem(
                        start, start + seconds, base64.b64encode(data).decode("ascii"), ITEM_FORMAT
                    )
                )
            self._items.remember(lecture_id, tuple(items))
            return items

    # ------------------------------------------------------------------ transcript

    async def transcript(self, lecture: dict[str, Any], spans: Spans | None = None) -> LectureTranscript:
        lecture_id = lecture["lectureId"]
        cached = self._transcripts.get(lecture_id)
        if cached is not None:
            return cached
        key = str(lecture.get("transcriptKey") or keys.transcript_key(lecture_id, self.platform))
        raw = await self.aws.get(key, spans)
        if raw is None:
            raise LectureUnavailableError(f"lecture {lecture_id}: the transcript is missing from storage")
        data = json.loads(raw)
        segments = tuple(
            TranscriptSegment(float(s["start"]), float(s["end"]), str(s["text"])) for s in data["segments"]
        )
        tokens = data.get("lectureTokens")
        return self._transcripts.remember(
            lecture_id, LectureTranscript(segments, int(tokens) if isinstance(tokens, int) else None)
        )

    async def make_transcript(self, lecture: dict[str, Any]) -> dict[str, Any]:
        """Transcribe the lecture segment by segment with the model; store and return the JSON."""
        lecture_id = lecture["lectureId"]
        items = await self.audio_items(lecture)
        gate = asyncio.Semaphore(min(TRANSCRIBE_CONCURRENCY, self.admission.limit))
        # A lecture waits for slots much longer than a question would (it is not interactive).
        wait = max(self.admission.timeout, 600.0)

        async def one(item: LectureAudioItem) -> str:
            async with gate, self.admission.slot(adm.LECTURE, timeout=wait):
                seconds = item.end - item.start
                return await self.vllm.transcribe(
                    base64.b64decode(item.b64),
                    item.fmt,
                    seconds,
                    transcribe_max_tokens(seconds, self.platform),
                )

        texts = await asyncio.gather(*(one(i) for i in items))
        segments = [TranscriptSegment(i.start, i.end, t) for i, t in zip(items, texts, strict=True)]
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
                {"start": round(i.start, 3), "end": round(i.end, 3), "text": t}
                for i, t in zip(items, texts, strict=True)
            ],
        }
        key = keys.transcript_key(lecture_id, self.platform)
        await self.aws.put(key, json.dumps(transcript, ensure_ascii=False).encode(), "application/json")
        self._transcripts.pop(lecture_id, None)
        return transcript
