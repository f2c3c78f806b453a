"""One table of formats, one answer each, asked of the audio package and of every part that uses it:
the edge's probe (through ranged reads of a moto S3 object, as the validation Lambda reads), AgentCore's
media handling (what the model server would be given), the audio generator's duration and the smoke
test's MP3 check. The recordings are made here (espeak-ng, ffmpeg) or are the Chromium recordings in
tests/unit/data; nothing is downloaded.

The decision the table pins (runtime/synapscribe/contract/, docs/interfaces.md): every format below
that browsers record or people upload is accepted, for question audio and for lectures; the model
server is given MP3 or WAV as they are and everything else converted to MP3; text, empty and
cut-short files are refused with a reason that says which.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from mutagen.id3 import ID3, TIT2
from required_tools import require_tools
from synapscribe.agentcore import media
from synapscribe.audio import formats
from synapscribe.audio.probe import ProbeRejection, ProbeResult, probe
from synapscribe.edge.s3_ranged import S3RangedFile
from synapscribe_local import audiogen
from synapscribe_ops.smoke.checks import looks_like_mp3

DATA = Path(__file__).parents[1] / "data"
SENTENCE = "The chloroplast holds the green pigment chlorophyll."
#: How far a measured length may be from the decoded one (AAC's priming frames, one Opus frame).
SLACK_SECONDS = 0.15


@dataclass(frozen=True)
class Row:
    name: str
    #: ffmpeg output arguments that make it from the spoken WAV, or a file under tests/unit/data
    source: tuple[str, ...] | str
    #: what every sniffer answers (None: no audio format we accept)
    fmt: str | None
    #: None: accepted. Else (what the edge's reason says, what AgentCore's says), as regexes.
    refusal: tuple[str, str] | None = None
    #: keep only this many bytes (a recording cut short)
    cut: int | None = None
    #: how far the measured length may be from the decoded audio's
    slack: float = SLACK_SECONDS
    #: led by an ID3v2 tag (some tools tag every file they write)
    id3: bool = False


_AAC = ("-c:a", "aac", "-b:a", "32k")
_OPUS = ("-c:a", "libopus", "-b:a", "24k")
_CUT = (
    r"looks like {} audio but cannot be read: it may be damaged or cut short",
    r"{} recording cannot be decoded",
)

TABLE = (
    Row("mp3", ("-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"), "mp3"),
    Row("aac-adts", (*_AAC, "-f", "adts"), "aac"),
    Row("aac-mp4", (*_AAC, "-f", "mp4"), "m4a"),
    # Safari's MediaRecorder: fragmented MP4/AAC whose header holds no duration.
    Row("aac-mp4-fragmented", (*_AAC, "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"), "m4a"),
    Row("opus-mp4-chromium", "chromium-156-question-opus.m4a", "m4a"),
    Row("aac-adts-id3", (*_AAC, "-f", "adts"), "aac", id3=True),
    Row("flac-id3", ("-c:a", "flac", "-f", "flac"), "flac", id3=True),
    Row("wav", ("-c:a", "pcm_s16le", "-f", "wav"), "wav"),
    Row("flac", ("-c:a", "flac", "-f", "flac"), "flac"),
    Row("opus-ogg", (*_OPUS, "-f", "ogg"), "ogg"),
    Row("opus-webm", (*_OPUS, "-f", "webm"), "webm"),
    # Chrome's and Firefox's MediaRecorder: a live WebM, no duration in its header and the
    # segment's size unknown (ffmpeg's matroska muxer option `live` writes it so).
    Row("opus-webm-live", (*_OPUS, "-f", "webm", "-live", "1"), "webm"),
    Row("opus-webm-chromium", "chromium-156-question.webm", "webm"),
    # A screen or camera recording: its sound is used. The container's duration runs to the end of
    # the last video frame (0.2 s at 5 frames a second) past the sound's.
    Row("opus-webm-with-video", ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-shortest", "-c:v", "libvpx", *_OPUS, "-f", "webm"), "webm", slack=0.5),
    Row("aac-mp4-with-video", ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-shortest", "-c:v", "mpeg4", *_AAC, "-f", "mp4"), "m4a"),
    Row("webm-video-only", ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "2", "-map", "1:v", "-c:v", "libvpx", "-f", "webm"), "webm", (r"WebM file has no audio track", r"WebM file has no audio track")),
    Row("mp4-video-only", ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "2", "-map", "1:v", "-c:v", "mpeg4", "-f", "mp4"), "m4a", (r"M4A file has no audio track", r"M4A file has no audio track")),
    Row("text", "text", None, (r"not an audio recording \(it is a text file\)",) * 2),
    Row("empty", "empty", None, (r"not an audio recording \(it is empty\)",) * 2),
    Row("mp3-truncated", ("-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"), "mp3", (_CUT[0].format("MP3"), _CUT[1].format("MP3")), cut=100),
    Row("mp4-truncated", (*_AAC, "-f", "mp4"), "m4a", (_CUT[0].format("M4A"), _CUT[1].format("M4A")), cut=600),
    Row("webm-truncated", (*_OPUS, "-f", "webm"), "webm", (_CUT[0].format("WEBM"), _CUT[1].format("WebM")), cut=100),
    Row("wav-truncated", ("-c:a", "pcm_s16le", "-f", "wav"), "wav", (r"WAV file contains no audio", _CUT[1].format("WAV")), cut=40),
)  # fmt: skip
ACCEPTED = [r for r in TABLE if r.refusal is None]
REFUSED = [r for r in TABLE if r.refusal is not None]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every row's file, made once: espeak-ng speaks, ffmpeg encodes."""
    require_tools("espeak-ng", "ffmpeg")
    d = tmp_path_factory.mktemp("formats")
    wav = d / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True)
    out: dict[str, Path] = {}
    for row in TABLE:
        path = d / f"{row.name}.bin"
        if row.source == "text":
            path.write_text("Lecture notes: photosynthesis turns light into chemical energy.\n")
        elif row.source == "empty":
            path.write_bytes(b"")
        elif isinstance(row.source, str):
            path.write_bytes((DATA / row.source).read_bytes())
        else:
            cmd = [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                str(wav),
                *row.source,
                "-ac",
                "1",
                str(path),
            ]
            subprocess.run(cmd, check=True, capture_output=True)
            path.write_bytes((_id3_tag() if row.id3 else b"") + path.read_bytes()[: row.cut])  # fmt: skip
        out[row.name] = path
    return out


def _id3_tag() -> bytes:
    """An ID3v2 tag longer than the 64 bytes the edge sniffs first."""
    tags = ID3()
    tags.add(TIT2(encoding=3, text=["Lecture 7: photosynthesis, recorded in room B"] * 4))
    out = io.BytesIO()
    tags.save(out)
    return out.getvalue()


def decoded_seconds(data: bytes) -> float:
    """What ffmpeg decodes of the recording: the length each measurement must agree with."""
    pcm = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", "pipe:0", "-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1"],
        input=data,
        check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    return len(pcm) / 2 / 16000


@pytest.fixture(scope="module")
def bucket() -> Iterator[object]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="formats", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield s3


def edge_probe(s3: object, name: str, data: bytes) -> ProbeResult:
    """The validation Lambda's read: ranged GETs of the stored object (only what the probe touches)."""
    key = f"lectures/{name}"
    s3.put_object(Bucket="formats", Key=key, Body=data)  # type: ignore[attr-defined]
    return probe(S3RangedFile(s3, "formats", key, len(data)), key.rsplit("/", 1)[-1])


# --------------------------------------------------------------------------- one answer per format


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.name)
def test_every_sniffer_gives_the_row_s_answer(samples: dict[str, Path], row: Row) -> None:
    data = samples[row.name].read_bytes()
    assert formats.sniff(data) == row.fmt
    # The edge reads 64 bytes (and 64 past an ID3 tag): its probe's answer is the accepted tests'.
    assert formats.sniff(data[:64]) in (row.fmt, "mp3" if row.id3 else row.fmt)
    assert looks_like_mp3(data) is (row.fmt == "mp3")


@pytest.mark.parametrize("row", ACCEPTED, ids=lambda r: r.name)
def test_accepted_formats_are_measured_alike_by_every_part(
    samples: dict[str, Path], bucket: object, row: Row
) -> None:
    path = samples[row.name]
    data = path.read_bytes()
    truth = decoded_seconds(data)
    # The package, over a plain file.
    with path.open("rb") as f:
        result = probe(f, f"talk.{row.fmt}")
    assert result.format == row.fmt and abs(result.duration_seconds - truth) < row.slack, (result, truth)
    # The edge: the same answer through ranged reads of S3.
    assert edge_probe(bucket, f"{row.name}.{row.fmt}", data) == result
    # The generator measures files as the platform does, whatever their name.
    assert audiogen.duration_seconds(path) == pytest.approx(result.duration_seconds)
    # AgentCore: MP3 and WAV go to the model server as they are; the rest are converted to MP3 once.
    if row.fmt in formats.ENGINE_FORMATS:
        given, fmt = data, row.fmt
    else:
        given, fmt = asyncio.run(media.to_mp3(data)), "mp3"
        assert formats.sniff(given) == "mp3"
    assert abs(media.duration_seconds(given, fmt) - truth) < SLACK_SECONDS


@pytest.mark.parametrize("row", REFUSED, ids=lambda r: r.name)
def test_refused_files_get_a_reason_that_says_why(samples: dict[str, Path], bucket: object, row: Row) -> None:
    assert row.refusal is not None
    edge_reason, agentcore_reason = row.refusal
    path = samples[row.name]
    data = path.read_bytes()
    with path.open("rb") as f, pytest.raises(ProbeRejection, match=edge_reason):
        probe(f, "talk.mp3")
    if data:  # S3 cannot range-read an empty object; the Lambda refuses 0 bytes before probing
        with pytest.raises(ProbeRejection, match=edge_reason):
            edge_probe(bucket, row.name, data)
    with pytest.raises(audiogen.AudioGenError, match=edge_reason):
        audiogen.duration_seconds(path)
    with pytest.raises(media.MediaError, match=agentcore_reason):
        asyncio.run(media.to_mp3(data))


@pytest.mark.parametrize("row", ACCEPTED, ids=lambda r: r.name)
def test_damaged_recordings_are_answered_never_crash(samples: dict[str, Path], row: Row) -> None:
    """Flipped bytes and cuts anywhere (the WebM and MP4 readers walk untrusted sizes): the probe
    answers a length or a ProbeRejection, nothing else escapes."""
    import random

    rng = random.Random(row.name)
    data = samples[row.name].read_bytes()
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cut = bytes(damaged[: rng.randrange(1, len(damaged))] if rng.random() < 0.5 else damaged)
        try:
            probe(io.BytesIO(cut), "damaged")
        except ProbeRejection as exc:
            assert exc.reason.endswith(".")
