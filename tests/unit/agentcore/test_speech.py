"""One sentence's TTS failure costs that sentence's audio, not the rest of the spoken answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
from synapscribe.agentcore import speech

from .pipeline_rig import FAKE_MP3, check_order


class FlakyTts:
    """The TTS service failing the sentences whose (0-based) request numbers are in `fail`."""

    def __init__(self, fail: set[int]) -> None:
        self.fail = fail
        self.inputs: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        number = len(self.inputs)
        self.inputs.append(json.loads(request.content)["input"])
        if number in self.fail:
            raise httpx.ReadTimeout("no answer in time", request=request)
        return httpx.Response(200, content=FAKE_MP3, headers={"X-TTS-Engine": "gtts"})


async def test_a_failed_sentence_does_not_silence_the_rest(make_rig: Any) -> None:
    tts = FlakyTts(fail={0})
    async with make_rig(tts=tts) as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
    answer = check_order(messages, voice_in=False)
    assert answer["type"] == "answer"
    audio = [m for m in messages if m["type"] == "audio"]
    assert len(tts.inputs) >= 3  # every sentence was tried
    assert len(audio) == len(tts.inputs) - 1
    assert [m["text"] for m in audio] == tts.inputs[1:]
    assert [m["seq"] for m in audio] == list(range(len(audio)))
    assert answer["audio"] == [m["url"] for m in audio] and answer["ttsEngine"] == "gtts"


async def test_speech_gives_up_after_consecutive_failures(make_rig: Any) -> None:
    limit = speech.TTS_GIVE_UP_AFTER_FAILURES
    tts = FlakyTts(fail=set(range(100)))
    async with make_rig(tts=tts) as rig:
        messages = await rig.ask(rig.session(), text="What does rubisco fix?")
    answer = check_order(messages, voice_in=False)
    assert answer["type"] == "answer" and answer["text"]
    assert answer["audio"] == [] and answer["ttsEngine"] == "none"
    assert len(tts.inputs) == limit  # the sentences after the limit were not sent to TTS at all
