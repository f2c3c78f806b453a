"""What the engine decodes, measured: the reason AgentCore converts browser recordings.

The engine environment's Python runs vLLM's audio loader (`load_audio`, what `AudioMediaIO` calls for
an `input_audio` part) with its soundfile backend on each accepted format as sent and on what AgentCore
gives the model server for it (MP3 and WAV as they are, the rest converted to MP3 once). soundfile
(libsndfile) reads MP3, WAV, FLAC and Ogg but not WebM, MP4 or ADTS, which vLLM reads only through its
PyAV fallback, and the GPU host installs `vllm` without the `audio` extra that brings soundfile and PyAV
(docs/interfaces.md "Accepted audio"). So AgentCore's output must decode with soundfile, to the
recording's length. The table of formats itself is tests/unit/audio/test_formats.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from engine_venv import engine_venv
from required_tools import require_tools
from synapscribe.agentcore import media
from synapscribe.audio import formats

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

DATA = Path(__file__).parents[1] / "unit" / "data"
_AAC = ["-c:a", "aac", "-b:a", "32k"]
_OPUS = ["-c:a", "libopus", "-b:a", "24k"]
#: name -> ffmpeg output arguments from the spoken WAV, or a recording under tests/unit/data
FORMATS: dict[str, list[str] | str] = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "opus-ogg": [*_OPUS, "-f", "ogg"],
    "aac-adts": [*_AAC, "-f", "adts"],
    "aac-mp4": [*_AAC, "-f", "mp4"],
    "aac-mp4-fragmented": [*_AAC, "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"],
    "opus-webm-live": [*_OPUS, "-f", "webm", "-live", "1"],
    "opus-webm-chromium": "chromium-156-question.webm",
    "opus-mp4-chromium": "chromium-156-question-opus.m4a",
}
SOUNDFILE_READS = {"mp3", "wav", "flac", "opus-ogg"}

DECODE = r"""
import json, logging, sys
from io import BytesIO
from pathlib import Path
from vllm.multimodal.media.audio import load_audio
logging.getLogger("vllm").setLevel(logging.ERROR)
out = {}
for name in sys.argv[1:]:
    try:
        audio, rate = load_audio(BytesIO(Path(name).read_bytes()), sr=None, backend="soundfile")
        out[name] = audio.shape[-1] / rate
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps(out))
"""


def _decode(files: list[Path]) -> dict[str, float | str]:
    """Each file's decoded length in seconds with the engine's soundfile backend, or its error."""
    root, _ = engine_venv()
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-c", DECODE, *map(str, files)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_what_agentcore_gives_the_engine_decodes_with_soundfile(tmp_path: Path) -> None:
    require_tools("espeak-ng", "ffmpeg")
    wav = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "Chloroplasts hold the green pigment chlorophyll."], check=True
    )
    sent: dict[str, Path] = {}
    given: dict[str, Path] = {}
    for name, source in FORMATS.items():
        path = tmp_path / f"{name}.bin"
        if isinstance(source, str):
            path.write_bytes((DATA / source).read_bytes())
        else:
            cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), *source, "-ac", "1", str(path)]
            subprocess.run(cmd, check=True, capture_output=True)
        data = path.read_bytes()
        fmt = formats.sniff(data)
        out = tmp_path / f"{name}.engine"
        out.write_bytes(data if fmt in formats.ENGINE_FORMATS else asyncio.run(media.to_mp3(data)))
        sent[name], given[name] = path, out
    decoded = _decode([*sent.values(), *given.values()])
    for name in FORMATS:
        raw, converted = decoded[str(sent[name])], decoded[str(given[name])]
        assert isinstance(converted, float), (
            f"{name}: the engine cannot decode what AgentCore sends: {converted}"
        )
        if name in SOUNDFILE_READS:
            assert isinstance(raw, float) and abs(raw - converted) < 0.15, (name, raw, converted)
        else:
            # If this fails, libsndfile learned the format: AgentCore could send it as it is.
            assert isinstance(raw, str), f"{name}: soundfile now reads it ({raw} s)"
