"""MPEG layer III frames: the header tables (parsed here only), a tolerant parse that resyncs over
junk and embedded tags (AgentCore cuts lectures with it), a strict walk (the generator repeats
frames it encoded itself), and each frame's side info, which the bit reservoir needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from synapscribe.audio.formats import MediaError, id3v2_size

#: kbit/s by (MPEG-1?, bitrate index), layer III (ISO 11172-3 2.4.2.3; ISO 13818-3 2.4.2.3)
_BITRATES = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
#: Hz by (version bits, rate index): 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True)
class Header:
    version: int
    rate_index: int
    length: int
    per_frame: int
    rate: int


def decode_header(data: bytes, pos: int) -> Header:
    """The layer III frame header at pos; MediaError says why the bytes there are not one."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        raise MediaError(f"MP3 frame sync lost at byte {pos}")
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    if layer != 1 or version == 1:
        raise MediaError("not an MPEG layer III stream")
    index, rate_index = (b2 >> 4) & 0xF, (b2 >> 2) & 3
    if index in (0, 15) or rate_index == 3:
        raise MediaError(f"free-format or invalid MP3 frame header at byte {pos}")
    mpeg1 = version == 3
    rate = _RATES[version][rate_index]
    per_frame = 1152 if mpeg1 else 576
    length = (per_frame // 8) * _BITRATES[mpeg1][index] * 1000 // rate + ((b2 >> 1) & 1)
    return Header(version, rate_index, length, per_frame, rate)


def header(data: bytes, pos: int) -> Header | None:
    """The layer III frame header at pos, or None when the bytes there are not one."""
    try:
        return decode_header(data, pos)
    except MediaError:
        return None


def walk(data: bytes) -> tuple[list[tuple[int, int]], int, int]:
    """(offset, length) of each frame of a bare layer III stream, its sample rate and samples per
    frame. Strict: anything but a frame (a tag, junk, a cut-short end is kept) is a MediaError."""
    frames: list[tuple[int, int]] = []
    rate = per_frame = 0
    pos = 0
    while pos + 4 <= len(data):
        head = decode_header(data, pos)
        rate, per_frame = head.rate, head.per_frame
        frames.append((pos, head.length))
        pos += head.length
    if not frames:
        raise MediaError("no MP3 frames")
    return frames, rate, per_frame


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


def _same_stream(a: Header, b: Header) -> bool:
    return a.version == b.version and a.rate_index == b.rate_index


def _confirmed(data: bytes, pos: int, head: Header) -> bool:
    """A header is believed when the next frame follows it (or the data ends, or a tag starts)."""
    nxt = pos + head.length
    if nxt > len(data):
        return False
    if nxt == len(data) or data[nxt : nxt + 3] in (b"TAG", b"ID3"):
        return True
    following = header(data, nxt)
    return following is not None and _same_stream(head, following)


def _resync(data: bytes, pos: int, stream: Header | None) -> int | None:
    """The offset of the next confirmed frame header from pos (of the same stream once it started)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 4 > len(data):
            return None
        head = header(data, pos)
        if (
            head is not None
            and (stream is None or _same_stream(stream, head))
            and _confirmed(data, pos, head)
        ):
            return pos
        pos += 1


def _is_info_frame(data: bytes, pos: int, length: int) -> bool:
    first = data[pos : pos + min(length, 64)]
    return b"Xing" in first or b"Info" in first or b"VBRI" in first


def _id3v1_at_end(data: bytes, pos: int) -> bool:
    """An ID3v1 tag (and its extended block) ends the data at pos."""
    return data[pos : pos + 3] == b"TAG" and len(data) - pos <= 128 + 227


def _skip_to(data: bytes, pos: int, stream: Header | None) -> int | None:
    """Where parsing goes on from bytes at pos that are not a frame of the stream (None: nowhere)."""
    tag = id3v2_size(data, pos)
    return pos + tag if tag and pos + tag <= len(data) else _resync(data, pos + 1, stream)


def parse_mp3(data: bytes) -> Mp3Frames:
    """The layer III frames of an MP3 (ID3 tags and Xing/Info/VBRI header frames skipped).

    Bytes that are not a frame (junk, an ID3 tag between two joined recordings) do not end the
    stream: parsing resynchronises on the next frame header of the same MPEG version and sample
    rate that the frame after it confirms, and records what it skipped. An ID3v1 tag at the very
    end and a last frame cut short are the only things that end it.
    """
    pos = id3v2_size(data)
    frames: list[tuple[int, int]] = []
    skipped: list[tuple[int, int]] = []
    stream: Header | None = None
    while pos + 4 <= len(data):
        head = header(data, pos)
        if head is None or (stream is not None and not _same_stream(stream, head)):
            if stream is not None and _id3v1_at_end(data, pos):
                break
            found = _skip_to(data, pos, stream)
            if stream is not None:
                skipped.append((pos, (len(data) if found is None else found) - pos))
            if found is None:
                break
            pos = found
            continue
        if stream is None and not _confirmed(data, pos, head):
            pos += 1  # a sync-like pattern before the audio starts
            continue
        if pos + head.length > len(data):
            break  # the last frame is cut short
        stream = stream or head
        if not _is_info_frame(data, pos, head.length):
            frames.append((pos, head.length))
        pos += head.length
    if not frames or stream is None:
        raise MediaError("not an MP3 stream: no audio frames found")
    return Mp3Frames(data, frames, stream.per_frame / stream.rate, skipped, stream.per_frame, stream.rate)


def mp3_samples(data: bytes) -> tuple[int, int]:
    """(decoded samples per channel, sample rate) of an MP3 item AgentCore cut (see Mp3Frames.samples)."""
    parsed = parse_mp3(data)
    return parsed.samples, parsed.rate


# --------------------------------------------------------------------------- side info
#
# A layer III frame's audio data ("main data") may begin before the frame itself, in the unused
# bytes of the frames before it: its side info's main_data_begin says how many bytes back (ISO
# 11172-3 2.4.1.7; ISO 13818-3 for MPEG-2). AgentCore's cutting (agentcore/media.py) leads each
# item with the frames its first frame reaches back into, made silent with `silent_frame`.


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


def crc16(data: bytes) -> int:
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
        out[4:6] = crc16(bytes(out[2:4]) + bytes(side)).to_bytes(2, "big")
    return bytes(out)
