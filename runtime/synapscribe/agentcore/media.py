"""Audio handling: format sniffing, duration, conversion, and cutting MP3 into items.

MP3 is cut at frame boundaries without re-encoding (fast and byte-for-byte deterministic), each
item led by the silent frames that hold its bit reservoir so it decodes cleanly on its own; other
formats are converted to MP3 once with ffmpeg first.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field

import mutagen
from mutagen.id3 import ID3, TXXX

from synapscribe import audiogen

#: Formats the model server takes as `input_audio` without conversion.
DIRECT_FORMATS = ("wav", "mp3")
_TOOL_TIMEOUT_SECONDS = 300


class MediaError(ValueError):
    """The bytes are not audio we can read (the message says why)."""


def sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        return "mp3"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def duration_seconds(data: bytes, fmt: str) -> float:
    """Decoded duration, measured the way the model server's loader sees the file."""
    if fmt == "wav":
        try:
            with wave.open(io.BytesIO(data), "rb") as reader:
                return reader.getnframes() / reader.getframerate()
        except (wave.Error, EOFError, ZeroDivisionError) as exc:
            raise MediaError(f"cannot read WAV audio: {exc}") from None
    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception as exc:  # mutagen raises many types for garbage
        raise MediaError(f"cannot read {fmt} audio: {exc}") from None
    length = getattr(getattr(parsed, "info", None), "length", None)
    if parsed is None or not length or length <= 0:
        raise MediaError(f"cannot read {fmt} audio: no audio stream found")
    return float(length)


async def run_tool(cmd: Sequence[str], stdin: bytes | None = None) -> bytes:
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise MediaError(f"{cmd[0]} is not installed") from None
    try:
        async with asyncio.timeout(_TOOL_TIMEOUT_SECONDS):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise MediaError(f"{cmd[0]} took longer than {_TOOL_TIMEOUT_SECONDS} s") from None
    if proc.returncode != 0:
        raise MediaError(f"{cmd[0]} failed: {err.decode('utf-8', 'replace').strip()[-300:]}")
    return out


async def to_mp3(data: bytes, bitrate_kbps: int = 32) -> bytes:
    """Any audio ffmpeg reads, as mono 16 kHz constant-bit-rate MP3 without tags."""
    return await run_tool(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
            "-map_metadata", "-1", "-vn", "-ac", "1", "-ar", "16000", "-b:a", f"{bitrate_kbps}k",
            "-write_xing", "0", "-id3v2_version", "0", "-fflags", "+bitexact", "-f", "mp3", "pipe:1",
        ],
        stdin=data,
    )  # fmt: skip


# --------------------------------------------------------------------------- MP3 frames

_BITRATES = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True)
class Mp3Frames:
    data: bytes
    frames: list[tuple[int, int]]  # (offset, length) of each audio frame
    frame_seconds: float
    #: (offset, length) of each run of bytes between frames that is not audio (junk, embedded tags)
    skipped: list[tuple[int, int]] = field(default_factory=list)
    samples_per_frame: int = 0
    rate: int = 0

    @property
    def seconds(self) -> float:
        return len(self.frames) * self.frame_seconds

    @property
    def samples(self) -> int:
        """Decoded samples (per channel) of all the frames: what the engine's decoder makes of an
        item AgentCore cut (no encoder-delay tag, so no decoder trims it; tests/engine checks)."""
        return len(self.frames) * self.samples_per_frame


def _id3v2_size(data: bytes, pos: int = 0) -> int:
    if data[pos : pos + 3] != b"ID3" or len(data) < pos + 10:
        return 0
    size = 0
    for b in data[pos + 6 : pos + 10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[pos + 5] & 0x10 else 0)


@dataclass(frozen=True)
class _Header:
    version: int
    rate_index: int
    length: int
    per_frame: int
    rate: int


def _header(data: bytes, pos: int) -> _Header | None:
    """The layer III frame header at pos, or None when the bytes there are not one."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    index, rate_index = (b2 >> 4) & 0xF, (b2 >> 2) & 3
    if layer != 1 or version == 1 or index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    rate = _RATES[version][rate_index]
    per_frame = 1152 if mpeg1 else 576
    length = (per_frame // 8) * _BITRATES[mpeg1][index] * 1000 // rate + ((b2 >> 1) & 1)
    return _Header(version, rate_index, length, per_frame, rate)


def _same_stream(a: _Header, b: _Header) -> bool:
    return a.version == b.version and a.rate_index == b.rate_index


def _confirmed(data: bytes, pos: int, head: _Header) -> bool:
    """A header is believed when the next frame follows it (or the data ends, or a tag starts)."""
    nxt = pos + head.length
    if nxt > len(data):
        return False
    if nxt == len(data) or data[nxt : nxt + 3] in (b"TAG", b"ID3"):
        return True
    following = _header(data, nxt)
    return following is not None and _same_stream(head, following)


def _resync(data: bytes, pos: int, stream: _Header | None) -> int | None:
    """The offset of the next confirmed frame header from pos (of the same stream once it started)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 4 > len(data):
            return None
        head = _header(data, pos)
        if (
            head is not None
            and (stream is None or _same_stream(stream, head))
            and _confirmed(data, pos, head)
        ):
            return pos
        pos += 1


def parse_mp3(data: bytes) -> Mp3Frames:
    """The layer III frames of an MP3 (ID3 tags and Xing/Info/VBRI header frames skipped).

    Bytes that are not a frame (junk, an ID3 tag between two joined recordings) do not end the
    stream: parsing resynchronises on the next frame header of the same MPEG version and sample
    rate that the frame after it confirms, and records what it skipped. An ID3v1 tag at the very
    end and a last frame cut short are the only things that end it.
    """
    pos = _id3v2_size(data)
    frames: list[tuple[int, int]] = []
    skipped: list[tuple[int, int]] = []
    stream: _Header | None = None
    while pos + 4 <= len(data):
        head = _header(data, pos)
        if head is None or (stream is not None and not _same_stream(stream, head)):
            if stream is not None and data[pos : pos + 3] == b"TAG" and len(data) - pos <= 128 + 227:
                break  # ID3v1 (and its extended block) at the end
            tag = _id3v2_size(data, pos)
            found = pos + tag if tag and pos + tag <= len(data) else _resync(data, pos + 1, stream)
            if found is None:
                if stream is not None:
                    skipped.append((pos, len(data) - pos))
                break
            if stream is not None:
                skipped.append((pos, found - pos))
            pos = found
            continue
        if stream is None and not _confirmed(data, pos, head):
            pos += 1  # a sync-like pattern before the audio starts
            continue
        if pos + head.length > len(data):
            break  # the last frame is cut short
        stream = stream or head
        first = data[pos : pos + min(head.length, 64)]
        if not (b"Xing" in first or b"Info" in first or b"VBRI" in first):
            frames.append((pos, head.length))
        pos += head.length
    if not frames or stream is None:
        raise MediaError("not an MP3 stream: no audio frames found")
    return Mp3Frames(data, frames, stream.per_frame / stream.rate, skipped, stream.per_frame, stream.rate)


def mp3_samples(data: bytes) -> tuple[int, int]:
    """(decoded samples per channel, sample rate) of an MP3 item AgentCore cut (see Mp3Frames.samples)."""
    parsed = parse_mp3(data)
    return parsed.samples, parsed.rate


#: How much shorter than the measured duration the cut audio may be: the larger of the two.
DURATION_TOLERANCE_FRACTION = 0.02
DURATION_TOLERANCE_SECONDS = 2.0


def check_complete(cut_seconds: float, measured_seconds: float) -> None:
    """Raise MediaError when the cut audio is shorter than the measured duration allows."""
    allowed = max(DURATION_TOLERANCE_SECONDS, DURATION_TOLERANCE_FRACTION * measured_seconds)
    if measured_seconds - cut_seconds > allowed:
        raise MediaError(
            f"only {cut_seconds:.1f} s of its measured {measured_seconds:.1f} s could be read as audio "
            f"(the file is damaged, cut short, or its header overstates its length); re-export it as one "
            f"audio file and upload it again"
        )


def item_bounds(total_seconds: float, max_item_seconds: float) -> list[tuple[float, float]]:
    """Equal consecutive spans of at most max_item_seconds covering the whole recording."""
    count = max(1, math.ceil(total_seconds / max_item_seconds - 1e-9))
    step = total_seconds / count
    return [(i * step, total_seconds if i == count - 1 else (i + 1) * step) for i in range(count)]


@dataclass(frozen=True)
class CutItem:
    """An item: the frames of [start, end) of the recording (in seconds of its audio frames), led
    by `lead` seconds of silent frames that carry the bit reservoir its first frame reads from."""

    start: float
    end: float
    data: bytes
    lead: float = 0.0

    @property
    def seconds(self) -> float:
        """The item's decoded duration: its lead and its own frames."""
        return self.lead + self.end - self.start


def _tag(data: bytes, cues: Sequence[audiogen.Cue]) -> bytes:
    tags = ID3()
    tags.add(TXXX(encoding=3, desc=audiogen.TEXT_TAG, text=[" ".join(c.text for c in cues)]))
    timeline = [[round(c.start, 3), round(c.end, 3), c.text] for c in cues]
    tags.add(TXXX(encoding=3, desc=audiogen.TIMELINE_TAG, text=[json.dumps(timeline, ensure_ascii=False)]))
    out = io.BytesIO()
    tags.save(out, v2_version=4, padding=lambda info: 0)
    return out.getvalue() + data


# --------------------------------------------------------------------------- the bit reservoir
#
# A layer III frame's audio data ("main data") may begin before the frame itself, in the unused
# bytes of the frames before it: its side info's main_data_begin says how many bytes back (ISO
# 11172-3 2.4.1.7; ISO 13818-3 for MPEG-2). An item cut at a frame boundary therefore starts with
# frames whose data lies in the previous item; decoders report that (mpg123, which libsndfile and
# so vLLM's audio loader use: "part2_3_length ... too large for available bit count") and play
# noise or silence. So each item is led by the frames its first frame reaches back into, made
# silent: no granule reads a bit (part2_3_length 0), and their main_data_begin is set so that the
# reservoir a decoder carries over reaches back as far as the first real frame needs. (Decoders
# keep only the bytes from the previous frame's main data start on: mpg123 copies the backstep
# from the previous frame's buffer, FFmpeg keeps what the previous frame did not read; so a lead
# frame with main_data_begin 0 would cut the chain.) Nothing is re-encoded (no encoder on the GPU
# host, no generation loss), the result is a pure function of the source (byte-identical items
# for vLLM's prefix cache), and no audio is lost or played twice: the lead is a few tens of
# milliseconds of silence, counted in the item's duration.


@dataclass(frozen=True)
class SideInfo:
    """Where a layer III frame's side info sits and what its bit reservoir needs."""

    offset: int  # of the side info, from the frame's first byte
    size: int
    crc: bool  # a CRC-16 over header bytes 2-3 and the side info follows the header
    main_data_begin: int  # bytes of main data that lie before this frame's own
    payload: int  # bytes of the frame's main data area (all but header, CRC and side info)
    mpeg1: bool  # main_data_begin has 9 bits (MPEG-1), else 8

    @property
    def max_begin(self) -> int:
        return 511 if self.mpeg1 else 255


def side_info(frame: bytes) -> SideInfo:
    """The side info of the layer III frame that starts `frame` (header at byte 0)."""
    if len(frame) < 4 or frame[0] != 0xFF or (frame[1] & 0xE0) != 0xE0:
        raise MediaError("not an MP3 frame header")
    mpeg1 = (frame[1] >> 3) & 3 == 3
    mono = frame[3] >> 6 == 3
    crc = not frame[1] & 1
    offset = 6 if crc else 4
    size = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    if len(frame) < offset + size:
        raise MediaError("the MP3 frame is shorter than its side info")
    begin = (frame[offset] << 1 | frame[offset + 1] >> 7) if mpeg1 else frame[offset]
    return SideInfo(offset, size, crc, begin, len(frame) - offset - size, mpeg1)


def _crc16(data: bytes) -> int:
    """The MPEG audio CRC: CRC-16, polynomial 0x8005, initial value 0xFFFF, most significant bit first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def silent_frame(frame: bytes, main_data_begin: int = 0) -> bytes:
    """The frame made silent: its side info zeroed but for `main_data_begin`, so no granule reads a
    bit while the reservoir carries on; its main data bytes stay for the frames after it. Its mode
    extension is cleared too, so no joint-stereo scale factor layout asks for bits; a CRC is
    recomputed."""
    info = side_info(frame)
    if not 0 <= main_data_begin <= info.max_begin:
        raise ValueError(f"main_data_begin {main_data_begin} is out of range")
    side = bytearray(info.size)
    if info.mpeg1:
        side[0], side[1] = main_data_begin >> 1, (main_data_begin & 1) << 7
    else:
        side[0] = main_data_begin
    out = bytearray(frame)
    out[3] &= 0xCF
    out[info.offset : info.offset + info.size] = side
    if info.crc:
        out[4:6] = _crc16(bytes(out[2:4]) + bytes(side)).to_bytes(2, "big")
    return bytes(out)


def _frame(parsed: Mp3Frames, index: int) -> bytes:
    offset, length = parsed.frames[index]
    return parsed.data[offset : offset + length]


def lead_frames(parsed: Mp3Frames, first: int) -> int:
    """How many frames before `first` hold the bytes its main_data_begin reaches back into."""
    need = side_info(_frame(parsed, first)).main_data_begin
    count = have = 0
    while have < need and count < first:
        count += 1
        have += side_info(_frame(parsed, first - count)).payload
    return count


def item_frames(parsed: Mp3Frames, first: int, count: int, lead: int) -> bytes:
    """Frames first..first+count-1, led by `lead` silent frames. `available` is what a decoder
    holds before a frame's main data area: the bytes from the previous frame's main data start.
    A frame that reaches back further (only the lead, or the start of a stream cut short) is made
    silent, reaching back as far as it can so the frames after it find their data."""
    out: list[bytes] = []
    available = 0
    for index in range(first - lead, first + count):
        frame = _frame(parsed, index)
        info = side_info(frame)
        begin = info.main_data_begin
        if index < first or begin > available:
            begin = min(available, info.max_begin)
            frame = silent_frame(frame, begin)
        out.append(frame)
        available = begin + info.payload
    return b"".join(out)


def _layout(parsed: Mp3Frames, count: int, leads: dict[int, int]) -> list[tuple[int, int, int]]:
    """(first frame, frames, lead frames) of `count` items that spread the frames evenly."""
    size, extra = divmod(len(parsed.frames), count)
    layout: list[tuple[int, int, int]] = []
    first = 0
    for i in range(count):
        n = size + (1 if i < extra else 0)
        if first not in leads:
            leads[first] = lead_frames(parsed, first)
        layout.append((first, n, leads[first]))
        first += n
    return layout


def _items(
    parsed: Mp3Frames, layout: list[tuple[int, int, int]], timeline: Sequence[audiogen.Cue] | None
) -> list[CutItem]:
    fs = parsed.frame_seconds
    items: list[CutItem] = []
    for first, n, lead in layout:
        body = item_frames(parsed, first, n, lead)
        start, end, shift = first * fs, (first + n) * fs, lead * fs
        if timeline is not None:
            cues = [
                audiogen.Cue(max(0.0, c.start - start) + shift, min(end, c.end) - start + shift, c.text)
                for c in timeline
                if c.start < end
                and c.end > start
                and (min(end, c.end) - max(start, c.start)) >= 0.5 * (c.end - c.start)
            ]
            body = _tag(body, cues)
        items.append(CutItem(start, end, body, shift))
    return items


def cut_mp3(
    data: bytes, max_item_seconds: float, timeline: Sequence[audiogen.Cue] | None = None
) -> list[CutItem]:
    """Cut an MP3 at frame boundaries into items of at most max_item_seconds each (lead included).

    Every audio frame `parse_mp3` finds lands in exactly one item, in order, after the item's lead
    of silent reservoir frames (see `item_frames`); bytes between frames that are not audio (junk,
    embedded tags) are left out. That is only the whole recording when the parse found all of it:
    callers compare the items' total with the recording's measured duration (`check_complete`).
    Timed text embedded in the source (the generated test speech's timeline) is carried into each
    item, shifted to its own time.
    """
    parsed = parse_mp3(data)
    per_item = max(1, math.floor(max_item_seconds / parsed.frame_seconds + 1e-9))
    # The fewest items that spread the frames evenly with every item's lead within the limit.
    count = max(1, math.ceil(len(parsed.frames) / per_item))
    leads: dict[int, int] = {}
    while True:
        layout = _layout(parsed, count, leads)
        if all(n + lead <= per_item for _, n, lead in layout):
            break
        if count >= len(parsed.frames) or per_item <= max(leads.values()):
            raise MediaError(f"items of {max_item_seconds} s cannot hold a frame and its bit reservoir")
        count += 1
    return _items(parsed, layout, audiogen.embedded_timeline(data) if timeline is None else timeline)


def split_mp3(data: bytes, pieces: int) -> list[CutItem]:
    """An MP3 (an item) cut into `pieces` items of nearly equal length, each cleanly decodable."""
    parsed = parse_mp3(data)
    if not 1 <= pieces <= len(parsed.frames):
        raise MediaError(f"{len(parsed.frames)} frames cannot be split into {pieces} pieces")
    return _items(parsed, _layout(parsed, pieces, {}), audiogen.embedded_timeline(data))
