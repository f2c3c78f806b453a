"""What the real engine refuses reaches the client as the right error (AgentCore with its neighbours
on loopback: moto, TTS, an @connections receiver; the model is the real vLLM).

AgentCore budgets every request to the context it is configured with, so the engine's own refusals
only come when the two disagree: here AgentCore is told the context is 32768 tokens
(SYNAPSCRIBE_MAX_MODEL_LEN) while the engine serves 16384, as an operator who raised one and not the
other would leave it. Then:
- a 10.9-minute lecture in audio mode (11 items, about 16 350 audio tokens) is over the engine's context;
- a 12-minute one has more audio items than the unit's `--limit-mm-per-prompt` lets a prompt carry;
- a lecture whose stored item is 90 s long (items stored when `audio.max_item_seconds` was larger)
  is over the engine's encoder cache (2048 tokens, about 81 s of audio);
and both are answered `too_large` saying what was too large, never `internal`. `/ready` says so
before any of that (the engine's `/v1/models` reports its context), and says when the engine does
not serve the model AgentCore asks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from synapscribe import keys
from synapscribe_local.harness import AgentCoreRig, agentcore_rig, spawn_agentcore

pytestmark = [
    pytest.mark.engine,
    pytest.mark.timeout(600),
    pytest.mark.needs_tool("espeak-ng", "sox", "ffmpeg"),
]

OWNER = "eu-west-1:engine-refusals"
AGENTCORE_CONTEXT = 32768
QUESTION = "What does the enzyme rubisco do in the Calvin cycle?"


def engine_v1(engine: Any) -> str:
    return str(engine.base_url).rstrip("/").removesuffix("/v1") + "/v1"


@pytest.fixture(scope="module")
def st(engine: Any) -> Iterator[AgentCoreRig]:
    env = {
        "VLLM_BASE_URL": engine_v1(engine),
        "VLLM_MODEL": engine.model,
        "SYNAPSCRIBE_MAX_MODEL_LEN": str(AGENTCORE_CONTEXT),
        # The CPU engine decodes and processes all 11 items of audio before it checks the length:
        # longer than a GPU host takes to answer (agentcore.upstream_timeout_seconds).
        "SYNAPSCRIBE_UPSTREAM_TIMEOUT_SECONDS": "180",
    }
    with agentcore_rig(with_standin=False, agentcore_env=env) as s:
        yield s
        assert s.receiver.invalid == []


def _served_context(engine: Any) -> int:
    models = httpx.get(engine_v1(engine) + "/models", timeout=10).json()["data"]
    return int(next(m["max_model_len"] for m in models if m["id"] == engine.model))


def _audio_mode(st: AgentCoreRig, lecture: dict[str, Any]) -> dict[str, Any]:
    updated = st.store.update_lecture(lecture["lectureId"], {"status": "ready", "contextMode": "audio"})
    assert updated is not None
    return updated


def test_a_request_over_the_engines_context_is_too_large(
    st: AgentCoreRig, engine: Any, lecture_audio: Any
) -> None:
    assert _served_context(engine) < AGENTCORE_CONTEXT
    # 10.9 minutes, 11 items of about 59.5 s (the most audio items the unit lets a prompt carry):
    # audio mode for a 32768-token AgentCore, about 16 350 audio tokens and the prompt's text for the
    # engine's 16384.
    lecture = _audio_mode(st, st.put_lecture(OWNER, lecture_audio(10.9)))
    session_id = st.start_session(OWNER, lecture)
    messages = st.ask(OWNER, session_id, "conn-context", timeout=300, text=QUESTION, voice=False)
    final = messages[-1]
    assert final["type"] == "error", final
    assert final["code"] == "too_large", final
    assert "do not fit the model's context" in final["message"], final
    assert "maximum context length" in final["message"], final  # the engine's own words
    assert "too large (context)" in st.agentcore.log_text()


def test_more_audio_items_than_the_engine_takes_is_too_large(st: AgentCoreRig, lecture_audio: Any) -> None:
    # 12 minutes: 12 items, one more than the unit's --limit-mm-per-prompt lets a prompt carry.
    lecture = _audio_mode(st, st.put_lecture(OWNER, lecture_audio(12)))
    session_id = st.start_session(OWNER, lecture)
    messages = st.ask(OWNER, session_id, "conn-items", timeout=300, text=QUESTION, voice=False)
    final = messages[-1]
    assert final["type"] == "error", final
    assert final["code"] == "too_large", final
    assert "more audio parts than the model takes at once" in final["message"], final
    assert "may be provided in one prompt" in final["message"], final  # the engine's own words
    assert "too large (items)" in st.agentcore.log_text()


def test_an_item_over_the_engines_encoder_cache_is_too_large(
    st: AgentCoreRig, lecture_audio: Any, tmp_path: Path
) -> None:
    source = lecture_audio(1.5)
    lecture = st.put_lecture(OWNER, source)
    assert lecture["contextMode"] == "audio"
    # The whole 90 s recording stored as the lecture's one item, as if cut when items were longer.
    prefix = keys.segments_prefix(lecture["lectureId"])
    st.s3.put_object(Bucket=st.bucket, Key=prefix + "0000.mp3", Body=source.read_bytes())
    manifest = {
        "lectureId": lecture["lectureId"],
        "format": "mp3",
        "items": [{"key": prefix + "0000.mp3", "start": 0.0, "end": lecture["durationSeconds"]}],
    }
    st.s3.put_object(Bucket=st.bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
    session_id = st.start_session(OWNER, lecture)
    messages = st.ask(OWNER, session_id, "conn-encoder", timeout=300, text=QUESTION, voice=False)
    final = messages[-1]
    assert final["type"] == "error", final
    assert final["code"] == "too_large", final
    assert "longer than the model takes in one piece" in final["message"], final
    assert "encoder cache size" in final["message"], final
    assert "too large (encoder_cache)" in st.agentcore.log_text()


def test_ready_says_when_the_engine_serves_another_model_or_less_context(
    st: AgentCoreRig, engine: Any
) -> None:
    response = httpx.get(st.agentcore.url + "/ready", timeout=10)
    assert response.status_code == 503, response.text
    (problem,) = response.json()["missing"]
    served = _served_context(engine)
    assert (
        f"serves {engine.model!r} with a context of {served} tokens; AgentCore plans for {AGENTCORE_CONTEXT}"
        in problem
    )
    env = {**st.env, "VLLM_MODEL": "not-served-here", "SYNAPSCRIBE_MAX_MODEL_LEN": str(served)}
    with spawn_agentcore(env) as other:
        response = httpx.get(other.url + "/ready", timeout=10)
    assert response.status_code == 503, response.text
    (problem,) = response.json()["missing"]
    assert "does not list the model 'not-served-here'" in problem and engine.model in problem
