"""The planner's audio token counts equal the engine's for the items AgentCore sends: lectures
generated and cut as AgentCore cuts them (MP3 frames, each item led by its bit-reservoir frames),
made into prompt items by AgentCore's own code, counted by the planner and by the real engine's
/tokenize (each item beside a text part, less the text part alone: its audio tokens and its
<|audio_bos|>/<|audio_eos|>). A handful of /tokenize calls on the session's engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_server import Engine
from synapscribe import planner
from synapscribe.agentcore import prompts
from synapscribe.agentcore.lectures import lecture_audio_items
from synapscribe.agentcore.media import cut_mp3
from synapscribe.platform import load_platform
from synapscribe_local import audiogen

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

PLATFORM = load_platform()
TEXT = {"type": "text", "text": "Part 1:"}


def tokenize(engine: Engine, content: list[dict[str, Any]]) -> int:
    messages = prompts.wire_messages([{"role": "user", "content": content}])
    body = {"model": engine.model, "messages": messages, "add_generation_prompt": True}
    response = httpx.post(f"{engine.base_url}/tokenize", json=body, timeout=120)
    response.raise_for_status()
    count = response.json()["count"]
    assert isinstance(count, int)
    return count


def agentcore_parts(path: Path, minutes: float) -> list[dict[str, Any]]:
    audiogen.make_lecture(path, minutes, "mp3")
    data = path.read_bytes()
    cut = cut_mp3(data, PLATFORM.audio.max_item_seconds, audiogen.embedded_timeline(data))
    items = lecture_audio_items([(c.start, c.end, c.data) for c in cut])
    message = prompts.lecture_audio_message(items)
    return [part for part in message["content"] if part["type"] == "input_audio"]


def test_planner_counts_agentcores_items_as_the_engine_does(engine: Engine, tmp_path: Path) -> None:
    # 3.3 minutes: four items, three of them led by reservoir frames (lengths not whole 40 ms).
    parts = [*agentcore_parts(tmp_path / "short.mp3", 0.2), *agentcore_parts(tmp_path / "long.mp3", 3.3)]
    assert len(parts) == 5 and all("_samples" in part for part in parts)
    text_only = tokenize(engine, [TEXT])
    for part in parts:
        engine_count = tokenize(engine, [TEXT, part]) - text_only
        assert planner.audio_part_tokens(part, PLATFORM) == engine_count, part["_samples"]
        # Without the sample count (audio of unknown length) the planner's bound stays safe.
        assert planner.audio_item_tokens(part["_seconds"], PLATFORM) >= engine_count
