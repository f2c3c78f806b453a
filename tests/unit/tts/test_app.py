"""The TTS HTTP API in process: validation, headers, cache, fall-back, single flight, latency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from synapscribe.tts.app import create_app
from synapscribe.tts.engines import EngineError
from synapscribe.tts.fallback import EnginePolicy
from synapscribe.tts.service import SpeechService
from synapscribe.tts.settings import TtsSettings
from synapscribe.tts.voices import Voice

SPEECH = "/v1/audio/speech"


class RecordingEngine:
    def __init__(self, name: str, fail: bool = False, delay: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def synthesize(self, text: str, voice: Voice) -> bytes:
        with self.lock:
            self.calls.append((text, voice.name))
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise EngineError(f"{self.name}: cannot reach the server")
        return f"{self.name}|{voice.name}|{text}".encode()


def make_client(*engines: RecordingEngine, **settings: object) -> httpx.AsyncClient:
    s = TtsSettings(engines=("gtts", "espeak-ng"), **settings)  # type: ignore[arg-type]
    policies = [(e, EnginePolicy(timeout_seconds=5, retries=0, cooldown_seconds=60)) for e in engines]
    app = create_app(s, SpeechService.from_settings(s, policies))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tts")


@pytest.fixture
async def google_down() -> AsyncIterator[tuple[httpx.AsyncClient, RecordingEngine, RecordingEngine]]:
    gtts, espeak = RecordingEngine("gtts", fail=True), RecordingEngine("espeak-ng")
    async with make_client(gtts, espeak) as client:
        yield client, gtts, espeak


async def test_speech_is_mp3_with_engine_and_cache_headers() -> None:
    gtts = RecordingEngine("gtts")
    async with make_client(gtts, RecordingEngine("espeak-ng")) as client:
        rsp = await client.post(
            SPEECH, json={"input": "Hello there.", "voice": "en", "response_format": "mp3"}
        )
        assert rsp.status_code == 200
        assert rsp.headers["content-type"] == "audio/mpeg"
        assert rsp.headers["x-tts-engine"] == "gtts"
        assert rsp.headers["x-tts-cache"] == "miss"
        assert rsp.content == b"gtts|en|Hello there."
        again = await client.post(SPEECH, json={"input": "Hello there.", "voice": "en", "model": "tts-1"})
        assert again.headers["x-tts-cache"] == "hit"
        assert again.content == rsp.content
        assert len(gtts.calls) == 1


async def test_google_down_falls_back_to_espeak_and_skips_gtts_afterwards(google_down) -> None:
    client, gtts, espeak = google_down
    first = await client.post(SPEECH, json={"input": "First sentence."})
    assert first.status_code == 200 and first.headers["x-tts-engine"] == "espeak-ng"
    second = await client.post(SPEECH, json={"input": "Second sentence."})
    assert second.headers["x-tts-engine"] == "espeak-ng"
    assert len(gtts.calls) == 1  # the breaker skipped gTTS for the second sentence
    assert len(espeak.calls) == 2
    health = (await client.get("/health")).json()
    assert health["engines"][0]["engine"] == "gtts" and health["engines"][0]["open"] is True
    assert "cannot reach the server" in health["engines"][0]["lastError"]


async def test_the_cache_is_engine_independent_and_reports_the_original_engine(google_down) -> None:
    client, _, _ = google_down
    await client.post(SPEECH, json={"input": "Cached.", "voice": "en"})
    hit = await client.post(SPEECH, json={"input": "  Cached.  ", "voice": "EN"})
    assert hit.headers["x-tts-cache"] == "hit" and hit.headers["x-tts-engine"] == "espeak-ng"


async def test_openai_voice_names_mean_the_default_voice(google_down) -> None:
    client, _, espeak = google_down
    rsp = await client.post(SPEECH, json={"input": "Hi.", "voice": "alloy", "model": "tts-1"})
    assert rsp.status_code == 200
    assert espeak.calls == [("Hi.", "en")]
    default = await client.post(SPEECH, json={"input": "Hi."})
    assert default.headers["x-tts-cache"] == "hit"


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"input": ""}, 400, "input", "input is empty"),
        ({"input": " \n\t "}, 400, "input", "input is empty"),
        ({"input": "x" * 101}, 400, "input", "input is 101 characters; the maximum is 100"),
        ({"input": "Hi.", "voice": "klingon"}, 400, "voice", "unknown voice 'klingon'; use one of en,"),
        (
            {"input": "Hi.", "response_format": "wav"},
            400,
            "response_format",
            "'wav' is not supported; use mp3",
        ),
        ({"voice": "en"}, 422, "input", "input: Field required"),
        ({"input": 42}, 422, "input", "input: Input should be a valid string"),
        ({"input": "Hi.", "speed": 2}, 422, "speed", "speed: Extra inputs are not permitted"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_speak_nothing(
    body: dict[str, object], status: int, param: str, message: str
) -> None:
    gtts, espeak = RecordingEngine("gtts"), RecordingEngine("espeak-ng")
    async with make_client(gtts, espeak, max_input_chars=100) as client:
        rsp = await client.post(SPEECH, json=body)
    assert rsp.status_code == status
    error = rsp.json()["error"]
    assert message in error["message"]
    assert error["param"] == param
    assert gtts.calls == [] and espeak.calls == []


async def test_a_body_that_is_not_json_is_refused(google_down) -> None:
    client, _, _ = google_down
    rsp = await client.post(SPEECH, content=b"{not json", headers={"content-type": "application/json"})
    assert rsp.status_code == 422
    assert "not valid JSON" in rsp.json()["error"]["message"]


async def test_no_engine_answers_503_naming_each_failure() -> None:
    async with make_client(RecordingEngine("gtts", fail=True), RecordingEngine("espeak-ng", fail=True)) as c:
        rsp = await c.post(SPEECH, json={"input": "Hello."})
        assert rsp.status_code == 503
        message = rsp.json()["error"]["message"]
        assert "gtts: gtts: cannot reach the server" in message
        assert "espeak-ng: espeak-ng: cannot reach the server" in message
        # failures are not cached
        again = await c.post(SPEECH, json={"input": "Hello."})
        assert again.status_code == 503


async def test_concurrent_identical_sentences_are_spoken_once() -> None:
    espeak = RecordingEngine("espeak-ng", delay=0.2)
    async with make_client(espeak) as client:
        answers = await asyncio.gather(*(client.post(SPEECH, json={"input": "Same."}) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert len(espeak.calls) == 1
    assert sorted(a.headers["x-tts-cache"] for a in answers) == ["hit"] * 4 + ["miss"]


async def test_simulated_latency_is_added_to_every_request() -> None:
    async with make_client(RecordingEngine("espeak-ng"), simulated_latency_ms=150) as client:
        await client.post(SPEECH, json={"input": "Warm."})
        started = time.monotonic()
        rsp = await client.post(SPEECH, json={"input": "Warm."})
        elapsed = time.monotonic() - started
    assert rsp.headers["x-tts-cache"] == "hit"
    assert elapsed >= 0.15


async def test_health_and_voices(google_down) -> None:
    client, _, _ = google_down
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert [e["engine"] for e in health.json()["engines"]] == ["gtts", "espeak-ng"]
    voices = (await client.get("/v1/voices")).json()
    assert "en" in voices["voices"] and voices["aliases"]["alloy"] == "en"


def test_shutting_down_closes_the_engines_workers() -> None:
    from fastapi.testclient import TestClient

    s = TtsSettings(engines=("espeak-ng",))
    service = SpeechService.from_settings(
        s, [(RecordingEngine("espeak-ng"), EnginePolicy(timeout_seconds=5))]
    )
    with TestClient(create_app(s, service)) as client:
        assert client.get("/health").status_code == 200
    # The lifespan's end shut every engine's worker pool: a new synthesis is refused.
    with pytest.raises(RuntimeError, match="shutdown"):
        service.chain.states[0].executor.submit(print)
