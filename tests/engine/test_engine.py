"""The real vLLM engine with the production unit's flags: the command line is accepted (and a flag
vLLM does not know is not), the served name, audio token counts, and every refusal the platform's
limits are built on (an item over the encoder cache, a request over the context, too many items).

One server for the session (the `engine` fixture); requests are few and small, so these tests add
little to the server's start. The tiny model's words mean nothing: no assertion reads its text.
"""

from __future__ import annotations

import base64
import json
import math
import random
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_server import Engine, engine_command, flag, free_port
from synapscribe.platform import load_platform

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]

PLATFORM = load_platform()
RATE = 16000  # Hz: the model's feature extractor rate, so the seconds are exact
# Each audio item is `<|audio_bos|><|AUDIO|><|audio_eos|>` in the prompt: the processor expands
# <|AUDIO|> to the item's audio tokens, the two markers stay.
ITEM_MARKERS = 2


def wav(seconds: float) -> bytes:
    """`seconds` of 16-bit mono noise at RATE (seeded), as a WAV file."""
    frames = round(seconds * RATE)
    data = random.Random(frames).randbytes(frames * 2)
    header = b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += RATE.to_bytes(4, "little") + (RATE * 2).to_bytes(4, "little") + (2).to_bytes(2, "little")
    header += (16).to_bytes(2, "little") + b"data" + len(data).to_bytes(4, "little")
    return header + data


def audio_part(data: bytes) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}


def chat(engine: Engine, parts: list[dict[str, Any]], max_tokens: int = 8) -> httpx.Response:
    content = [*parts, {"type": "text", "text": "What does the lecture say?"}]
    body = {
        "model": engine.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    return httpx.post(f"{engine.base_url}/v1/chat/completions", json=body, timeout=600)


def prompt_tokens(engine: Engine, *seconds: float) -> int:
    response = chat(engine, [audio_part(wav(s)) for s in seconds], max_tokens=1)
    assert response.status_code == 200, response.text
    return int(response.json()["usage"]["prompt_tokens"])


def error_message(response: httpx.Response) -> str:
    assert response.status_code == 400, f"{response.status_code}: {response.text[:500]}"
    return str(response.json()["error"]["message"])


def test_the_units_command_line_is_what_runs(engine: Engine) -> None:
    if engine.command is None:
        pytest.skip("SYNAPSCRIBE_ENGINE_URL: a server started elsewhere")
    argv, unit = engine.command.argv, engine.command.unit_argv
    # Only the GPU check is dropped and the interpreter put in front of the `vllm` script.
    assert argv[1:] == unit[1:]
    assert unit[1].endswith("/bin/vllm") and unit[2] == "serve"
    assert Path(unit[3]) == engine.model_dir
    expected = {
        "--served-model-name": PLATFORM.model.served_name,
        "--max-model-len": str(PLATFORM.vllm.max_model_len),
        "--gpu-memory-utilization": str(PLATFORM.vllm.gpu_memory_utilization),
        "--max-num-seqs": str(PLATFORM.vllm.max_num_seqs),
        "--max-num-batched-tokens": str(PLATFORM.vllm.max_num_batched_tokens),
        "--dtype": PLATFORM.model.dtype,
    }
    assert {k: flag(argv, k) for k in expected} == expected
    assert "--enable-prefix-caching" in argv
    limit = {"audio": PLATFORM.max_audio_items_per_prompt, "image": 0, "video": 0}
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == limit
    # vLLM's own record of what it parsed: the values above, taken as given.
    log = engine.log_path.read_text() if engine.log_path else ""
    assert f"'limit_mm_per_prompt': {limit}" in log
    assert f"'max_num_batched_tokens': {PLATFORM.vllm.max_num_batched_tokens}" in log
    assert "Resolved architecture: Qwen2_5OmniModel" in log  # what a refused flag never reaches


def test_a_flag_vllm_rejects_fails_the_start(engine_build: tuple[Path, Path], tmp_path: Path) -> None:
    """The same command line plus one unknown flag: the server must exit non-zero, and fast."""
    venv, model = engine_build
    command = engine_command(venv, model, free_port(), tmp_path)
    proc = subprocess.run(
        [*command.argv, "--no-such-flag", "1"],
        env=command.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "unrecognized arguments: --no-such-flag" in proc.stderr
    # Refused by the argument parser, before vLLM looked at any model (no start, no wait).
    assert "Resolved architecture" not in proc.stdout + proc.stderr


def test_models_lists_the_served_name(engine: Engine) -> None:
    response = httpx.get(f"{engine.base_url}/v1/models", timeout=10)
    assert response.status_code == 200
    (model,) = response.json()["data"]
    assert model["id"] == PLATFORM.model.served_name == engine.model
    assert model["max_model_len"] == PLATFORM.vllm.max_model_len


def test_audio_is_25_tokens_a_second(engine: Engine) -> None:
    base = prompt_tokens(engine)
    tps = PLATFORM.audio.tokens_per_second
    for seconds in (10, PLATFORM.audio.max_item_seconds):
        assert prompt_tokens(engine, seconds) - base == seconds * tps + ITEM_MARKERS, seconds
    # Several items: each adds its own tokens and markers.
    assert prompt_tokens(engine, 10, 20, 30) - base == 60 * tps + 3 * ITEM_MARKERS


def test_an_audio_item_may_fill_the_encoder_cache_and_no_more(engine: Engine) -> None:
    limit = PLATFORM.max_audio_item_tokens
    tps = PLATFORM.audio.tokens_per_second
    base = prompt_tokens(engine)
    assert prompt_tokens(engine, limit / tps) - base == limit + ITEM_MARKERS  # just at the limit
    over = chat(engine, [audio_part(wav((limit + 1) / tps))])  # one token more
    message = error_message(over)
    assert f"audio item with {limit + 1} embedding tokens" in message
    assert f"exceeds the pre-allocated encoder cache size {limit}" in message


def test_a_request_over_the_context_is_refused(engine: Engine) -> None:
    item = wav(PLATFORM.audio.max_item_seconds)
    per_item = PLATFORM.audio.max_item_seconds * PLATFORM.audio.tokens_per_second + ITEM_MARKERS
    count = math.ceil(PLATFORM.vllm.max_model_len / per_item)
    assert count <= PLATFORM.max_audio_items_per_prompt  # refused for its length, not its count
    message = error_message(chat(engine, [audio_part(item)] * count))
    assert f"exceeds model's maximum context length ({PLATFORM.vllm.max_model_len})" in message


def test_a_text_request_over_the_context_is_refused(engine: Engine) -> None:
    words = " ".join(["lecture"] * PLATFORM.vllm.max_model_len)  # at least one token a word
    response = chat(engine, [{"type": "text", "text": words}])
    message = error_message(response)
    assert str(PLATFORM.vllm.max_model_len) in message
    assert response.json()["error"]["param"] == "input_tokens"


def test_more_audio_items_than_the_limit_are_refused(engine: Engine) -> None:
    limit = PLATFORM.max_audio_items_per_prompt
    message = error_message(chat(engine, [audio_part(wav(1))] * (limit + 1)))
    assert f"At most {limit} audio(s)" in message


def test_answers_end_on_their_own(engine: Engine) -> None:
    """The tiny model's generation_config ends answers early at temperature 0 (see tiny_model.py)."""
    response = chat(engine, [audio_part(wav(5))], max_tokens=64)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert response.json()["usage"]["completion_tokens"] < 64
