"""Every MP3 item AgentCore cuts decodes cleanly with the engine's own audio loader: the engine
environment's Python runs vLLM's `AudioMediaIO.load_bytes` (what the server does with an
`input_audio` part: libsndfile, whose MP3 decoder is mpg123) on each item, and the decoder writes
nothing to stderr. The same recordings cut plainly at frame boundaries (the old way) make it report
missing bit-reservoir data, so the check can fail. The decoded length is the item's frames,
lead included, which is what the engine's audio token count is made from.

Needs the engine environment, not the server. The fast unit test of the cutting logic is
tests/unit/agentcore/test_media_reservoir.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from engine_venv import engine_venv
from required_tools import require_tools
from synapscribe.agentcore import media

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

# Runs in the engine environment: decodes each file as vLLM's server does (AudioMediaIO, the
# default backend chain), catching what the C decoder writes to file descriptor 2 while it runs.
DECODE = r"""
import json, logging, os, sys, tempfile
from pathlib import Path
from vllm.multimodal.media.audio import AudioMediaIO
logging.getLogger("vllm").setLevel(logging.ERROR)  # its fallback notice (no torchcodec) is not the decoder's
loader = AudioMediaIO()
out = []
for name in sys.argv[1:]:
    data = Path(name).read_bytes()
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            audio, rate = loader.load_bytes(data)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        out.append({"name": name, "samples": int(audio.shape[-1]), "rate": int(rate),
                    "stderr": err.read().decode("utf-8", "replace")})
print(json.dumps(out))
"""


def _decode(files: list[Path]) -> dict[str, dict[str, object]]:
    """Each file's decoded sample count, sample rate and what the decoder wrote to stderr."""
    root, _ = engine_venv()
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-c", DECODE, *map(str, files)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


def _ffmpeg_mp3(tmp: Path, name: str, source: list[str], *encode: str) -> bytes:
    path = tmp / name
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *source, *encode,
         "-write_xing", "0", "-id3v2_version", "0", "-fflags", "+bitexact", "-f", "mp3", str(path)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture(scope="module")
def recordings(
    tmp_path_factory: pytest.TempPathFactory, lecture_audio: Callable[..., Path]
) -> dict[str, bytes]:
    """A spoken lecture as AgentCore stores it (mono 16 kHz MPEG-2), and two denser sources an
    uploader may send as they are: pink noise in the same format, and joint-stereo 44.1 kHz
    MPEG-1 (9-bit main_data_begin, 32-byte side info)."""
    require_tools("espeak-ng", "ffmpeg", "sox")
    tmp = tmp_path_factory.mktemp("mp3")
    noise = ["-f", "lavfi", "-i", "anoisesrc=d=40:c=pink:a=0.3:seed=11"]
    tones = ["-f", "lavfi", "-i", "sine=f=330:d=30", "-f", "lavfi", "-i", "anoisesrc=d=30:c=brown:seed=3"]
    stereo = [
        "-filter_complex",
        "[0][1]amerge=inputs=2",
        "-ar",
        "44100",
        "-b:a",
        "128k",
        "-joint_stereo",
        "1",
    ]
    return {
        "lecture": lecture_audio(1.5).read_bytes(),  # the session's cached generated lecture
        "noise": _ffmpeg_mp3(tmp, "noise.mp3", noise, "-ac", "1", "-ar", "16000", "-b:a", "32k"),
        "stereo": _ffmpeg_mp3(tmp, "stereo.mp3", tones, *stereo),
    }


def _plain_cut(data: bytes, items: list[media.CutItem]) -> list[bytes]:
    """The same items cut the old way: the frames alone, no lead."""
    parsed = media.parse_mp3(data)
    fs = parsed.frame_seconds
    return [
        b"".join(data[o : o + n] for o, n in parsed.frames[round(i.start / fs) : round(i.end / fs)])
        for i in items
    ]


def test_cut_items_decode_cleanly_with_the_engines_loader(
    recordings: dict[str, bytes], tmp_path: Path
) -> None:
    files: dict[Path, media.CutItem] = {}
    plain: list[Path] = []
    for name, data in recordings.items():
        # 60 s items as AgentCore stores them, 7 s items for many more cut points, and halves of
        # an item (the transcription retry).
        cut = media.cut_mp3(data, 60) + media.cut_mp3(data, 7)
        cut += media.split_mp3(cut[1].data, 2)
        for i, item in enumerate(cut):
            path = tmp_path / f"{name}-{i:02d}.mp3"
            path.write_bytes(item.data)
            files[path] = item
        for i, body in enumerate(_plain_cut(data, media.cut_mp3(data, 7))[1:]):
            path = tmp_path / f"{name}-plain-{i:02d}.mp3"
            path.write_bytes(body)
            plain.append(path)
    decoded = _decode([*files, *plain])
    for path, item in files.items():
        got = decoded[str(path)]
        assert got["stderr"] == "", f"{path.name}: {got['stderr']}"
        # Every frame decodes, the lead's too: the duration the engine counts tokens from. Exactly
        # so for AgentCore's own items (16 kHz, frames of one size). libsndfile stops at mpg123's
        # length estimate, made from the file size when there is no Xing header: for 44.1 kHz
        # streams, whose frames differ by a padding byte, that may fall short by under a millisecond.
        rate = int(str(got["rate"]))
        expected = round(item.seconds * rate)
        if rate == 16000:
            assert got["samples"] == expected, path.name
        else:
            assert expected - rate // 1000 <= int(str(got["samples"])) <= expected, path.name
    complaints = [decoded[str(p)]["stderr"] for p in plain]
    assert any("mpg123" in str(c) for c in complaints), "the plain cut should make the decoder complain"
