"""A WebM (Matroska) recording's duration: from its Info element, or, when a live recording has
none (browsers' MediaRecorder writes none), from the time of its last block near the end.

Both read only a few kilobytes through a seekable file (over S3, a couple of ranged GETs).
"""

from __future__ import annotations

import struct
from typing import Protocol

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMECODE_SCALE = 0x2AD7B1
_DURATION = 0x4489
_CLUSTER = 0x1F43B675
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_AUDIO = 2
_CLUSTER_ID = b"\x1f\x43\xb6\x75"
_TIMECODE = 0xE7
_SIMPLE_BLOCK = 0xA3
_BLOCK_GROUP = 0xA0
_BLOCK = 0xA1
UNKNOWN_SIZE = -1
#: How much of the end is searched for the last cluster, growing until one is found.
TAIL_BYTES = (64 * 1024, 512 * 1024, 2 * 1024 * 1024)


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class WebmError(ValueError):
    """The EBML structure is broken where it was read."""


def _vint_at(buf: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at pos: (value, position after it)."""
    if pos >= len(buf):
        raise WebmError("EBML data ends early")
    b0 = buf[pos]
    length = next((i + 1 for i in range(8) if b0 & (0x80 >> i)), 0)
    if length == 0 or pos + length > len(buf):
        raise WebmError("invalid EBML varint")
    value = b0 if keep_marker else b0 & (0xFF >> length)
    for byte in buf[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return UNKNOWN_SIZE, pos + length
    return value, pos + length


def _element(f: Reader) -> tuple[int, int]:
    """(id, size) of the element at the file's position; the position moves past its header."""
    start = f.tell()
    buf = f.read(12)
    ident, pos = _vint_at(buf, 0, keep_marker=True)
    size, pos = _vint_at(buf, pos, keep_marker=False)
    f.seek(start + pos)
    return ident, size


def _info(data: bytes) -> tuple[int, float | None]:
    """(timecode scale in ns, duration in timecode units or None) of an Info element's body."""
    scale, duration, pos = 1_000_000, None, 0
    while pos < len(data):
        child, pos = _vint_at(data, pos, keep_marker=True)
        size, pos = _vint_at(data, pos, keep_marker=False)
        value = data[pos : pos + size]
        if child == _TIMECODE_SCALE:
            scale = int.from_bytes(value, "big")
        elif child == _DURATION and size in (4, 8) and len(value) == size:
            duration = struct.unpack(">f" if size == 4 else ">d", value)[0]
        pos += max(size, 0)
    return scale, duration


def _has_audio(tracks: bytes) -> bool:
    """Whether a Tracks element's body holds a TrackEntry of TrackType 2 (audio)."""
    pos = 0
    while pos < len(tracks):
        ident, pos = _vint_at(tracks, pos, keep_marker=True)
        size, pos = _vint_at(tracks, pos, keep_marker=False)
        if ident == _TRACK_ENTRY and _child_uint(tracks[pos : pos + size], _TRACK_TYPE) == _AUDIO:
            return True
        pos += max(size, 0)
    return False


def _child_uint(data: bytes, wanted: int) -> int | None:
    pos = 0
    while pos < len(data):
        ident, pos = _vint_at(data, pos, keep_marker=True)
        size, pos = _vint_at(data, pos, keep_marker=False)
        if ident == wanted:
            return int.from_bytes(data[pos : pos + size], "big")
        pos += max(size, 0)
    return None


def header(f: Reader) -> tuple[int, float | None, bool | None]:
    """(timecode scale in ns, duration in seconds or None, whether a track is audio or None when
    the Tracks element was not found) from the Segment's elements before the first Cluster."""
    ident, size = _element(f)
    if ident != _EBML or size < 0:
        raise WebmError("no EBML header")
    f.seek(size, 1)
    ident, _ = _element(f)
    if ident != _SEGMENT:
        raise WebmError("no Segment")
    scale, duration, audio = 1_000_000, None, None
    for _ in range(64):  # top-level elements before the clusters: SeekHead, Void, Info, Tracks ...
        ident, size = _element(f)
        if ident == _CLUSTER or size == UNKNOWN_SIZE:
            break
        if ident == _INFO:
            scale, duration = _info(f.read(size))
        elif ident == _TRACKS:
            audio = _has_audio(f.read(size))
        else:
            f.seek(size, 1)
        if duration is not None and audio is not None:
            break
    return scale, None if duration is None else duration * scale / 1e9, audio


def _block_time(buf: bytes, pos: int, end: int) -> int:
    """The relative timecode of the (Simple)Block whose body starts at pos."""
    _track, pos = _vint_at(buf, pos, keep_marker=False)
    if pos + 2 > end:
        raise WebmError("block cut short")
    return int(struct.unpack(">h", buf[pos : pos + 2])[0])


def _cluster_block_times(buf: bytes, pos: int) -> list[int]:
    """Absolute timecodes of the blocks of the cluster at pos, as far as `buf` holds them whole."""
    _, pos = _vint_at(buf, pos, keep_marker=True)
    size, pos = _vint_at(buf, pos, keep_marker=False)
    end = len(buf) if size == UNKNOWN_SIZE else min(len(buf), pos + size)
    base: int | None = None
    times: list[int] = []
    while pos < end:
        try:
            child, body = _vint_at(buf, pos, keep_marker=True)
            csize, body = _vint_at(buf, body, keep_marker=False)
        except WebmError:
            break
        if csize == UNKNOWN_SIZE or body + csize > end:
            break  # the last element is cut short (or the next cluster begins)
        if child == _TIMECODE:
            base = int.from_bytes(buf[body : body + csize], "big")
        elif child in (_SIMPLE_BLOCK, _BLOCK_GROUP) and base is None:
            raise WebmError("a block before its cluster's timecode")
        elif child == _SIMPLE_BLOCK and base is not None:
            times.append(base + _block_time(buf, body, body + csize))
        elif child == _BLOCK_GROUP and base is not None:
            inner, ipos = _vint_at(buf, body, keep_marker=True)
            _isize, ipos = _vint_at(buf, ipos, keep_marker=False)
            if inner == _BLOCK:
                times.append(base + _block_time(buf, ipos, body + csize))
        pos = body + csize
    return times


def _last_block_end(buf: bytes) -> int | None:
    """The end, in timecode units, of the last block in the last whole-headed cluster of `buf`:
    the last block's time plus the step between the last two blocks (one audio frame)."""
    pos = buf.rfind(_CLUSTER_ID)
    while pos >= 0:
        try:
            times = _cluster_block_times(buf, pos)
        except WebmError:
            times = []  # the ID's bytes inside block data, not a cluster
        if times:
            step = times[-1] - times[-2] if len(times) > 1 else 0
            return times[-1] + max(step, 0)
        pos = buf.rfind(_CLUSTER_ID, 0, pos)
    return None


def tail_seconds(f: Reader, size: int, scale: int) -> float | None:
    """The recording's length from the last cluster near its end, or None when none is found."""
    for tail in TAIL_BYTES:
        start = max(0, size - tail)
        f.seek(start)
        end = _last_block_end(f.read(size - start))
        if end is not None:
            return end * scale / 1e9
        if start == 0:
            break
    return None
