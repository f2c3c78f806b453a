"""A fragmented MP4's duration (ISO 14496-12 8.8): browsers' MediaRecorder (Safari's MP4/AAC,
Chrome's MP4/Opus) writes an empty or nearly empty `moov` and the audio in `moof` fragments, so
the header's duration (what mutagen reports) is 0 or one fragment's. The length is where the last
fragment ends: its `tfdt` base time plus its `trun` sample durations, in the audio track's
`mdhd` timescale. Only box headers, `moov` and the last `moof` are read.
"""

from __future__ import annotations

import struct

from synapscribe.audio.webm import Reader


class Mp4Error(ValueError):
    """The box structure is broken where it was read."""


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each box in `data`."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < head or pos + size > len(data):
            raise Mp4Error(f"box {kind!r} overruns its parent")
        out.append((kind, data[pos + head : pos + size]))
        pos += size
    return out


def _child(data: bytes, *path: bytes) -> bytes | None:
    for kind in path:
        found = next((body for k, body in _boxes(data) if k == kind), None)
        if found is None:
            return None
        data = found
    return data


def _top_level(f: Reader, size: int) -> list[tuple[bytes, int, int]]:
    """(type, offset of the body, body size) of each top-level box, from their headers only."""
    out: list[tuple[bytes, int, int]] = []
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box, kind = struct.unpack(">I4s", head[:8])
        skip = 8
        if box == 1:
            box, skip = struct.unpack(">Q", head[8:16])[0], 16
        elif box == 0:
            box = size - pos
        if box < skip:
            raise Mp4Error(f"top-level box {kind!r} has an impossible size")
        out.append((kind, pos + skip, min(box, size - pos) - skip))
        pos += box
    return out


def _audio_track(moov: bytes) -> tuple[int, int] | None:
    """(track ID, timescale) of the first sound track in `moov`."""
    for kind, trak in _boxes(moov):
        hdlr = _child(trak, b"mdia", b"hdlr") if kind == b"trak" else None
        if hdlr is None or hdlr[8:12] != b"soun":
            continue
        tkhd, mdhd = _child(trak, b"tkhd"), _child(trak, b"mdia", b"mdhd")
        if tkhd is None or mdhd is None:
            return None
        track = struct.unpack(">I", tkhd[20:24] if tkhd[0] == 1 else tkhd[12:16])[0]
        scale = struct.unpack(">I", mdhd[20:24] if mdhd[0] == 1 else mdhd[12:16])[0]
        return int(track), int(scale)
    return None


def _trun_duration(trun: bytes, default: int) -> int:
    flags = int.from_bytes(trun[1:4], "big")
    count = struct.unpack(">I", trun[4:8])[0]
    if not flags & 0x100:
        return int(count * default)
    pos = 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    fields = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    total = 0
    for _ in range(count):
        total += struct.unpack(">I", trun[pos : pos + 4])[0]
        pos += fields
    return total


def _fragment_end(moof: bytes, track: int) -> int | None:
    """Where the track's samples in this fragment end, in its timescale (None: no tfdt)."""
    for kind, traf in _boxes(moof):
        tfhd = _child(traf, b"tfhd") if kind == b"traf" else None
        if tfhd is None or struct.unpack(">I", tfhd[4:8])[0] != track:
            continue
        flags, pos, default = int.from_bytes(tfhd[1:4], "big"), 8, 0
        pos += 8 if flags & 0x1 else 0
        pos += 4 if flags & 0x2 else 0
        if flags & 0x8:
            default = struct.unpack(">I", tfhd[pos : pos + 4])[0]
        tfdt = _child(traf, b"tfdt")
        if tfdt is None:
            return None
        base = struct.unpack(">Q", tfdt[4:12])[0] if tfdt[0] == 1 else struct.unpack(">I", tfdt[4:8])[0]
        runs = [body for k, body in _boxes(traf) if k == b"trun"]
        return int(base) + sum(_trun_duration(t, default) for t in runs)
    return None


class NoAudioTrack(ValueError):
    """The MP4 holds no sound track (a video without sound)."""


def fragmented_seconds(f: Reader, size: int) -> float | None:
    """The length of a fragmented MP4's audio track, or None when the file is not fragmented
    (mutagen's header duration is then right). NoAudioTrack when it has no sound track, Mp4Error
    when its boxes are broken."""
    try:
        boxes = _top_level(f, size)
        moov = next(((pos, n) for kind, pos, n in boxes if kind == b"moov"), None)
        if moov is None:
            raise Mp4Error("no moov box")
        f.seek(moov[0])
        moov_body = f.read(moov[1])
        track = _audio_track(moov_body)
        if track is None:
            raise NoAudioTrack("no sound track")
        moofs = [(pos, n) for kind, pos, n in boxes if kind == b"moof"]
        if _child(moov_body, b"mvex") is None or not moofs or track[1] == 0:
            return None
        f.seek(moofs[-1][0])
        end = _fragment_end(f.read(moofs[-1][1]), track[0])
    except (struct.error, IndexError) as exc:
        raise Mp4Error(f"broken box: {exc}") from None
    return None if end is None else end / track[1]
