"""A seekable, read-only file over an S3 object that fetches only the blocks a reader touches.

mutagen seeks to the header (and sometimes to the tail for the last page or an ID3v1 tag) and
reads a few kilobytes; everything it skips is never downloaded, so the cost of reading a
recording's format and duration does not grow with its size. `max_bytes` caps what one probe
may fetch, so a pathological file cannot make it read the whole object.
"""

from __future__ import annotations

import io
import time
from typing import Any

from synapscribe.audio.probe import ReadBudgetExceeded

__all__ = ["DEFAULT_BLOCK_BYTES", "DEFAULT_MAX_BYTES", "ReadBudgetExceeded", "S3RangedFile"]

DEFAULT_BLOCK_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


class S3RangedFile(io.RawIOBase):
    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        size: int,
        etag: str | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._size = size
        self._etag = etag
        self._block = block_bytes
        self._max = max_bytes
        self._blocks: dict[int, bytes] = {}
        self._pos = 0
        self.name = name or key.rsplit("/", 1)[-1]
        self.bytes_fetched = 0
        self.requests = 0
        #: Wall time spent in ranged GETs (the benchmark separates it from the handler's own work).
        self.fetch_seconds = 0.0

    # io.RawIOBase protocol ------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError("seek before the start of the object")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if self._pos >= self._size:
            return b""
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        out = bytearray()
        pos = self._pos
        while pos < end:
            index = pos // self._block
            block = self._load(index, end)
            start = pos - index * self._block
            piece = block[start : start + (end - pos)]
            if not piece:
                break
            out += piece
            pos += len(piece)
        self._pos = pos
        return bytes(out)

    # fetching -----------------------------------------------------------------------------

    def _load(self, index: int, want_end: int) -> bytes:
        if index in self._blocks:
            return self._blocks[index]
        # One request covers the run of missing blocks up to what the caller wants.
        last = index
        while (last + 1) * self._block < want_end and (last + 1) not in self._blocks:
            last += 1
        first_byte = index * self._block
        last_byte = min(self._size, (last + 1) * self._block) - 1
        length = last_byte - first_byte + 1
        if self.bytes_fetched + length > self._max:
            raise ReadBudgetExceeded(
                f"reading {self._key} would fetch more than {self._max} bytes of its header"
            )
        kwargs: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self._key,
            "Range": f"bytes={first_byte}-{last_byte}",
        }
        if self._etag:
            kwargs["IfMatch"] = self._etag
        started = time.perf_counter()
        resp = self._s3.get_object(**kwargs)
        data: bytes = resp["Body"].read()
        self.fetch_seconds += time.perf_counter() - started
        self.requests += 1
        self.bytes_fetched += len(data)
        for i in range(index, last + 1):
            lo = (i - index) * self._block
            self._blocks[i] = data[lo : lo + self._block]
        return self._blocks[index]
