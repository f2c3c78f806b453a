"""Audio handling: format sniffing, duration, conversion, and cutting MP3 into items.

MP3 is cut at frame boundaries without re-encoding (fast and byte-for-byte deterministic), each
item led by the silent frames that hold its bit reservoir so it decodes cleanly on its own; other
formats are converted to MP3 once with ffmpeg first.
"""

from __future__ import annotations

import asyncio
import io
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass

import mutagen

from synapscribe.audio.formats import LABELS, MediaError, not_audio_reason, sniff
from synapscribe.audio.frames import (
    Mp3Frames,
    SideInfo,
    mp3_samples,
    parse_mp3,
    side_info,
    silent_frame,
)
from synapscribe.audio.tags import Cue, embedded_timeline, tag_mp3

_TOOL_TIMEOUT_SECONDS = 300
__all__ = [
    "MediaError",
    "Mp3Frames",
    "SideInfo",
    "mp3_samples",
    "parse_mp3",
    "side_info",
    "silent_frame",
]


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
    """An accepted recording (any of formats.LABELS) as mono 16 kHz constant-bit-rate MP3 without
    tags. Bytes in no accepted format are refused before ffmpeg sees them (it reads many more)."""
    fmt = sniff(data)
    if fmt is None:
        raise MediaError(not_audio_reason(data))
    try:
        return await _ffmpeg_mp3(data, bitrate_kbps)
    except MediaError as exc:
        if "does not contain any stream" in str(exc):  # ffmpeg: nothing left once video is dropped
            raise MediaError(f"the {LABELS[fmt]} file has no audio track (a video without sound)") from None
        raise MediaError(
            f"the {LABELS[fmt]} recording cannot be decoded (damaged or cut short?): {exc}"
        ) from None


async def _ffmpeg_mp3(data: bytes, bitrate_kbps: int) -> bytes:
    return await run_tool(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
            "-map_metadata", "-1", "-vn", "-ac", "1", "-ar", "16000", "-b:a", f"{bitrate_kbps}k",
            "-write_xing", "0", "-id3v2_version", "0", "-fflags", "+bitexact", "-f", "mp3", "pipe:1",
        ],
        stdin=data,
    )  # fmt: skip


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
    parsed: Mp3Frames, layout: list[tuple[int, int, int]], timeline: Sequence[Cue] | None
) -> list[CutItem]:
    fs = parsed.frame_seconds
    items: list[CutItem] = []
    for first, n, lead in layout:
        body = item_frames(parsed, first, n, lead)
        start, end, shift = first * fs, (first + n) * fs, lead * fs
        if timeline is not None:
            cues = [
                Cue(max(0.0, c.start - start) + shift, min(end, c.end) - start + shift, c.text)
                for c in timeline
                if c.start < end
                and c.end > start
                and (min(end, c.end) - max(start, c.start)) >= 0.5 * (c.end - c.start)
            ]
            body = tag_mp3(body, cues)
        items.append(CutItem(start, end, body, shift))
    return items


def cut_mp3(data: bytes, max_item_seconds: float, timeline: Sequence[Cue] | None = None) -> list[CutItem]:
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
    return _items(parsed, layout, embedded_timeline(data) if timeline is None else timeline)


def split_mp3(data: bytes, pieces: int) -> list[CutItem]:
    """An MP3 (an item) cut into `pieces` items of nearly equal length, each cleanly decodable."""
    parsed = parse_mp3(data)
    if not 1 <= pieces <= len(parsed.frames):
        raise MediaError(f"{len(parsed.frames)} frames cannot be split into {pieces} pieces")
    return _items(parsed, _layout(parsed, pieces, {}), embedded_timeline(data))
