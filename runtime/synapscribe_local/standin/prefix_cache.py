"""Simulated automatic prefix caching, counted the way vLLM counts it.

Like vLLM, the prompt is cut into full blocks of `block_size` tokens (vLLM's --block-size); each block's hash chains the
previous block's hash, its token ids and the content hash of every audio item that overlaps it (so
two prompts with the same placeholder tokens but different audio bytes never share a block).
A request queries all its prompt tokens and hits the longest run of cached leading blocks, at most
`len(prompt) - 1` tokens (the last token is always computed).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from synapscribe_local.standin.tokens import AudioItem, Prompt

#: vLLM's default block size on GPUs (StandinConfig.block_size sets the served one)
BLOCK_SIZE = 16


def block_hashes(prompt: Prompt, block_size: int = BLOCK_SIZE) -> list[str]:
    """The chained hashes of the prompt's full blocks."""
    hashes: list[str] = []
    parent = ""
    for start in range(0, len(prompt) - len(prompt) % block_size, block_size):
        end = start + block_size
        h = hashlib.sha256(parent.encode())
        h.update(",".join(map(str, prompt.token_ids[start:end])).encode())
        for offset, item in prompt.audio:
            if offset < end and offset + item.num_tokens > start:
                h.update(item.digest.encode())
        parent = h.hexdigest()
        hashes.append(parent)
    return hashes


@dataclass(frozen=True)
class CacheLookup:
    queried_tokens: int
    hit_tokens: int


class PrefixCache:
    """An LRU set of block hashes with vLLM's query and hit counters (in tokens)."""

    def __init__(self, capacity_blocks: int, block_size: int = BLOCK_SIZE) -> None:
        if capacity_blocks <= 0:
            raise ValueError("capacity_blocks must be positive")
        self.capacity_blocks = capacity_blocks
        self.block_size = block_size
        self._blocks: OrderedDict[str, None] = OrderedDict()
        self.queries_total = 0
        self.hits_total = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup_and_insert(self, prompt: Prompt) -> CacheLookup:
        hashes = block_hashes(prompt, self.block_size)
        max_hit_blocks = max(0, (len(prompt) - 1) // self.block_size)
        hit_blocks = 0
        for h in hashes[:max_hit_blocks]:
            if h not in self._blocks:
                break
            hit_blocks += 1
        for h in hashes:
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        lookup = CacheLookup(queried_tokens=len(prompt), hit_tokens=hit_blocks * self.block_size)
        self.queries_total += lookup.queried_tokens
        self.hits_total += lookup.hit_tokens
        return lookup


class MultimodalCache:
    """vLLM's multimodal processor cache, as its counters see it: every audio item of a request is
    a query, a hit when an item with the same hash (its uuid, else its bytes) was processed before
    (an LRU of `capacity` items, like --mm-processor-cache-gb). An item sent by uuid alone
    (`input_audio: null`) is taken from here, or refused as vLLM 0.32 refuses it (`resolve`)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, AudioItem | None] = OrderedDict()
        self.queries_total = 0
        self.hits_total = 0

    def clear(self) -> None:
        """Everything forgotten, as when the server restarts."""
        self._items.clear()

    def get(self, uuid: str) -> AudioItem | None:
        return self._items.get(f"uuid:{uuid}")

    def lookup_and_insert(self, digests: list[str], items: list[AudioItem] | None = None) -> int:
        hits = 0
        for n, digest in enumerate(digests):
            self.queries_total += 1
            if digest in self._items:
                hits += 1
                self._items.move_to_end(digest)
            else:
                self._items[digest] = items[n] if items is not None else None
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        self.hits_total += hits
        return hits
