"""Lecture items by reference: the data once per model server, the uuid alone afterwards.

Every lecture item carries a stable uuid (lecture id, item index, a digest of its bytes: a changed
cut is a new id) in every request, so vLLM keys its processor and prefix caches by the uuid, never
by a content hash on one turn and the uuid on the next (which throws the cache away: design facts,
round three). The first request of a lecture on this host sends the items' data with their uuids;
once the model server has answered one, later requests send `{"input_audio": null, "uuid": ...}`
(under 1 KB for a lecture instead of megabytes of base64). vLLM's processor cache is an LRU
(`--mm-processor-cache-gb`), and a restarted server holds nothing: an item it no longer holds is
refused with a 400 (MediaCacheMissError), and the request is sent again once with the data.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from synapscribe.agentcore.prompts import LectureAudioItem
from synapscribe.agentcore.vllm_client import MediaCacheMissError, VllmClient

log = logging.getLogger(__name__)

#: uuids remembered as held by the model server; past this the oldest are sent with data again
#: (a resend costs an encode, never an error).
DEFAULT_CAPACITY = 4096


def item_uuid(lecture_id: str, index: int, data: bytes) -> str:
    """The item's id at the model server: its lecture, its place and its bytes."""
    return f"{lecture_id}-{index}-{hashlib.sha256(data).hexdigest()[:16]}"


def lecture_of(items: Sequence[LectureAudioItem]) -> str:
    """The lecture id the items' uuids name ("?" without uuids)."""
    uuid = items[0].uuid if items else None
    return uuid.rsplit("-", 2)[0] if uuid else "?"


class HeldMedia:
    """Which lecture items this host's model server holds, as far as AgentCore knows (an LRU of
    uuids: an item is remembered once a request carrying its data was answered)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._held: OrderedDict[str, None] = OrderedDict()
        #: requests sent again with the data after the server refused the uuid alone
        self.resends = 0

    def holds(self, items: Sequence[LectureAudioItem]) -> bool:
        """True when every item has a uuid and the server was given each one before."""
        return bool(items) and all(i.uuid is not None and i.uuid in self._held for i in items)

    def remember(self, items: Sequence[LectureAudioItem]) -> None:
        for item in items:
            if item.uuid is None:
                continue
            self._held[item.uuid] = None
            self._held.move_to_end(item.uuid)
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)

    def forget(self, items: Sequence[LectureAudioItem]) -> None:
        for item in items:
            if item.uuid is not None:
                self._held.pop(item.uuid, None)

    def lectures(self) -> set[str]:
        """The lecture ids whose items the server holds (the host registry's `lectures held`)."""
        return {uuid.rsplit("-", 2)[0] for uuid in self._held}


async def stream_answer(
    vllm: VllmClient,
    held: HeldMedia,
    items: Sequence[LectureAudioItem],
    messages: Callable[[bool], list[dict[str, Any]]],
    max_tokens: int,
    stream_interval: int = 1,
) -> AsyncIterator[str]:
    """The answer's pieces for the request `messages(by_reference)`: by reference when the server
    holds every item, else with the data; a cache-miss refusal (raised before any piece) is
    answered by sending the request once more with the data."""
    by_reference = held.holds(items)
    if items and not by_reference:
        log.info("lecture %s: its %d item(s) sent with their data", lecture_of(items), len(items))
    try:
        async for piece in _remembering(
            vllm.stream_answer(messages(by_reference), max_tokens, stream_interval), held, items
        ):
            yield piece
        return
    except MediaCacheMissError as exc:
        if not by_reference:
            raise
        held.forget(items)
        held.resends += 1
        log.info(
            "lecture %s: its %d item(s) sent with their data again: the model server no longer holds them (%s)",
            lecture_of(items),
            len(items),
            exc,
        )
    async for piece in _remembering(
        vllm.stream_answer(messages(False), max_tokens, stream_interval), held, items
    ):
        yield piece


async def _remembering(
    pieces: AsyncIterator[str], held: HeldMedia, items: Sequence[LectureAudioItem]
) -> AsyncIterator[str]:
    """The pieces; the items are remembered as held once the server has begun answering."""
    remembered = False
    async for piece in pieces:
        if not remembered:
            held.remember(items)
            remembered = True
        yield piece
    if not remembered:
        held.remember(items)
