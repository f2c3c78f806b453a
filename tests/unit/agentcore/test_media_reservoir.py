"""MP3 items decode on their own: no frame of an item reads bit-reservoir bytes (main_data_begin)
from frames that are not in it. The side info is parsed from hand-made frames; the cutting is
checked on an ffmpeg-encoded stream, whose frames do use the reservoir. (The engine's own decoder
decoding real items without a complaint is tests/engine/test_mp3_items_decode.py.)"""

from __future__ import annotations

import subprocess

import pytest
from required_tools import require_tools
from synapscribe.agentcore import media
from synapscribe.audio.frames import crc16


def _mpeg2_mono_frame(main_data_begin: int, fill: int = 0x55, crc: bool = False) -> bytes:
    """An MPEG-2 layer III mono 32 kbit/s 16 kHz frame (144 bytes): header, side info, payload."""
    header = bytes([0xFF, 0xF2 if crc else 0xF3, 0x48, 0xC4])  # version 2, layer III; mono, mode ext 0
    side = bytes([main_data_begin]) + bytes([0xAB] * 8)  # 9 bytes; the rest is not zero on purpose
    body = header + (b"\x00\x00" if crc else b"") + side
    return body + bytes([fill]) * (144 - len(body))


def _mpeg1_stereo_frame(main_data_begin: int) -> bytes:
    """An MPEG-1 layer III joint-stereo 128 kbit/s 44.1 kHz frame (417 bytes)."""
    header = bytes([0xFF, 0xFB, 0x90, 0x64])  # mode 01 (joint stereo), mode extension 10 (M/S)
    side = bytes([main_data_begin >> 1, (main_data_begin & 1) << 7 | 0x3F]) + bytes([0xCD] * 30)
    return header + side + bytes([0x11]) * (417 - 4 - 32)


def test_side_info_reads_main_data_begin_of_each_version() -> None:
    info = media.side_info(_mpeg2_mono_frame(200))
    assert (info.offset, info.size, info.crc, info.main_data_begin, info.payload) == (4, 9, False, 200, 131)
    info = media.side_info(_mpeg2_mono_frame(7, crc=True))
    assert (info.offset, info.crc, info.main_data_begin, info.payload) == (6, True, 7, 129)
    # MPEG-1: 9 bits, so up to 511 bytes back; stereo side info is 32 bytes.
    info = media.side_info(_mpeg1_stereo_frame(0x1FF))
    assert (info.size, info.main_data_begin, info.payload) == (32, 511, 417 - 36)
    assert media.side_info(_mpeg1_stereo_frame(256)).main_data_begin == 256
    with pytest.raises(media.MediaError, match="not an MP3 frame"):
        media.side_info(b"ID3\x04" + bytes(40))


def test_the_crc_is_mpeg_audio_crc16() -> None:
    # CRC-16 with polynomial 0x8005, initial 0xFFFF, unreflected (catalogued as CRC-16/CMS): its
    # check value over "123456789" is 0xAEE7.
    assert crc16(b"123456789") == 0xAEE7


def test_a_silent_frame_reads_no_bits_and_keeps_its_bytes() -> None:
    frame = _mpeg1_stereo_frame(300)
    silent = media.silent_frame(frame)
    info = media.side_info(silent)
    assert info.main_data_begin == 0
    assert silent[info.offset : info.offset + info.size] == bytes(info.size)  # part2_3_length 0
    # It may reach back (so the reservoir carries on), in 9 bits for MPEG-1, 8 for MPEG-2.
    reaching = media.silent_frame(frame, 257)
    assert media.side_info(reaching).main_data_begin == 257
    assert reaching[info.offset + 2 : info.offset + info.size] == bytes(info.size - 2)
    assert media.side_info(media.silent_frame(_mpeg2_mono_frame(3), 255)).main_data_begin == 255
    with pytest.raises(ValueError, match="out of range"):
        media.silent_frame(_mpeg2_mono_frame(3), 256)
    assert silent[:3] == frame[:3] and silent[3] == frame[3] & 0xCF  # mode extension cleared
    assert silent[info.offset + info.size :] == frame[info.offset + info.size :]  # later frames' data
    protected = media.silent_frame(_mpeg2_mono_frame(90, crc=True))
    assert protected[4:6] == crc16(protected[2:4] + protected[6:15]).to_bytes(2, "big")


def _encoded(seconds: int) -> bytes:
    """Pink noise as the lecture MP3s are made (mono 16 kHz 32 kbit/s CBR): the encoder uses the
    bit reservoir for almost every frame."""
    require_tools("ffmpeg")
    return subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"anoisesrc=d={seconds}:c=pink:a=0.3:seed=7", "-ac", "1", "-ar", "16000",
            "-b:a", "32k", "-write_xing", "0", "-id3v2_version", "0", "-fflags", "+bitexact",
            "-f", "mp3", "pipe:1",
        ],
        check=True,
        capture_output=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def noise() -> bytes:
    return _encoded(20)


def _missing_reservoir(item: bytes) -> list[int]:
    """The frames of `item` whose main data begins before what a decoder holds for them: the bytes
    from the previous frame's main data start on (mpg123 copies the backstep out of the previous
    frame's buffer; FFmpeg keeps what the previous frame left unread)."""
    parsed = media.parse_mp3(item)
    missing: list[int] = []
    available = 0
    for index, (offset, length) in enumerate(parsed.frames):
        info = media.side_info(item[offset : offset + length])
        if info.main_data_begin > available:
            missing.append(index)
        available = info.main_data_begin + info.payload
    return missing


def test_the_reservoir_model_holds_for_what_the_encoder_wrote(noise: bytes) -> None:
    # The whole encoded stream meets the model (main data is laid out in order), and it does use
    # the reservoir, most of all right after silence ...
    assert _missing_reservoir(noise) == []
    parsed = media.parse_mp3(noise)
    reaching = [media.side_info(noise[o : o + n]).main_data_begin for o, n in parsed.frames]
    assert sum(b > 0 for b in reaching) > len(reaching) / 2
    # ... so a plain cut at a frame boundary leaves frames without their data.
    offset = parsed.frames[100][0]
    assert _missing_reservoir(noise[offset:])[:1] == [0]


def test_items_cut_at_frame_boundaries_no_longer_read_missing_reservoir(noise: bytes) -> None:
    parsed = media.parse_mp3(noise)
    items = media.cut_mp3(noise, 6)
    assert len(items) == 4
    per_item = 6 / parsed.frame_seconds
    starts = [round(i.start / parsed.frame_seconds) for i in items]
    # The cut points are frames that do reach back: a plain cut there would not decode cleanly.
    plain = [noise[parsed.frames[s][0] : parsed.frames[s][0] + parsed.frames[s][1]] for s in starts[1:]]
    assert all(media.side_info(frame).main_data_begin > 0 for frame in plain)
    for item, start in zip(items, starts, strict=True):
        assert _missing_reservoir(item.data) == []
        frames = media.parse_mp3(item.data).frames
        lead = round(item.lead / parsed.frame_seconds)
        assert lead == media.lead_frames(parsed, start) and (lead > 0) == (start > 0)
        assert len(frames) == lead + round((item.end - item.start) / parsed.frame_seconds) <= per_item
        assert item.seconds == pytest.approx(len(frames) * parsed.frame_seconds)
        got = [item.data[o : o + n] for o, n in frames]
        source = [noise[o : o + n] for o, n in parsed.frames[start - lead : start - lead + len(frames)]]
        # The lead frames are the source's frames before the item, silent; the rest are as they were.
        assert all(g != f for g, f in zip(got[:lead], source[:lead], strict=True))
        assert all(media.silent_frame(f, media.side_info(g).main_data_begin) == g
                   for f, g in zip(source[:lead], got[:lead], strict=True))  # fmt: skip
        assert got[lead:] == source[lead:]
    # Every frame of the recording is in exactly one item, once.
    assert sum(i.end - i.start for i in items) == pytest.approx(parsed.seconds)
    assert [i.data for i in media.cut_mp3(noise, 6)] == [i.data for i in items]


def test_a_stream_that_starts_inside_the_reservoir_is_silenced_until_it_decodes(noise: bytes) -> None:
    parsed = media.parse_mp3(noise)
    offset = parsed.frames[40][0]
    assert media.side_info(noise[offset:]).main_data_begin > 0
    items = media.cut_mp3(noise[offset:], 60)
    assert len(items) == 1 and items[0].lead == 0 and _missing_reservoir(items[0].data) == []
    frames = media.parse_mp3(items[0].data).frames
    assert len(frames) == len(parsed.frames) - 40  # nothing dropped: the first frame is silent
    assert media.side_info(items[0].data[frames[0][0] :]).main_data_begin == 0


def test_an_item_splits_into_exactly_two_clean_halves(noise: bytes) -> None:
    item = media.cut_mp3(noise, 6)[1]
    halves = media.split_mp3(item.data, 2)
    assert len(halves) == 2
    assert all(_missing_reservoir(h.data) == [] for h in halves)
    assert sum(h.end - h.start for h in halves) == pytest.approx(item.seconds)
    with pytest.raises(media.MediaError, match="cannot be split"):
        media.split_mp3(item.data, 0)


def test_items_too_short_for_a_frame_and_its_reservoir_are_refused(noise: bytes) -> None:
    frame_seconds = media.parse_mp3(noise).frame_seconds
    with pytest.raises(media.MediaError, match="bit reservoir"):
        media.cut_mp3(noise, frame_seconds * 1.5)
