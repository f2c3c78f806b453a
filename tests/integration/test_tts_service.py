"""The real TTS service as a subprocess: gTTS unreachable (connection refused), espeak-ng speaks."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import httpx
import pytest
from mutagen.mp3 import MP3
from synapscribe.platform import load_platform
from synapscribe_local.tts_process import offline_env, spawn_tts

pytestmark = pytest.mark.integration

SPEECH = "/v1/audio/speech"


def test_service_falls_back_to_espeak_caches_and_skips_gtts_while_it_is_down() -> None:
    env = {**offline_env("gtts,espeak-ng"), "SYNAPSCRIBE_TTS_GTTS_BACKOFF_SECONDS": "0.05"}
    with spawn_tts(env=env) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = {"model": "tts-1", "input": "The Calvin cycle fixes carbon dioxide.", "voice": "en"}
        first = client.post(SPEECH, json={**body, "response_format": "mp3"})
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "audio/mpeg"
        assert first.headers["x-tts-engine"] == "espeak-ng"
        assert first.headers["x-tts-cache"] == "miss"
        info = MP3(io.BytesIO(first.content)).info
        assert 1.0 < info.length < 10.0 and info.channels == 1

        again = client.post(SPEECH, json=body)
        assert again.headers["x-tts-cache"] == "hit"
        assert again.content == first.content

        health = client.get("/health").json()
        gtts = health["engines"][0]
        assert gtts["engine"] == "gtts" and gtts["open"] is True
        assert gtts["attempts"] == 1 + load_platform().tts.gtts_retries
        assert health["cache"]["entries"] == 1

        # The next sentence does not try Google again: the breaker is open.
        started = time.monotonic()
        other = client.post(SPEECH, json={"input": "Rubisco is an enzyme.", "voice": "en-gb"})
        assert other.headers["x-tts-engine"] == "espeak-ng" and other.headers["x-tts-cache"] == "miss"
        assert client.get("/health").json()["engines"][0]["attempts"] == gtts["attempts"]
        assert time.monotonic() - started < 10

        bad = client.post(SPEECH, json={"input": "Hi.", "response_format": "opus"})
        assert bad.status_code == 400 and "opus" in bad.json()["error"]["message"]


def test_offline_service_speaks_with_espeak_only() -> None:
    with spawn_tts(env={"SYNAPSCRIBE_TTS_ENGINES": "espeak-ng"}) as url:
        rsp = httpx.post(url + SPEECH, json={"input": "Bonjour à tous.", "voice": "fr"}, timeout=30)
        assert rsp.status_code == 200 and rsp.headers["x-tts-engine"] == "espeak-ng"
        assert MP3(io.BytesIO(rsp.content)).info.length > 0.5
        assert [e["engine"] for e in httpx.get(url + "/health").json()["engines"]] == ["espeak-ng"]


def test_service_refuses_to_start_on_a_bad_variable() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "tts", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "SYNAPSCRIBE_TTS_CACHE_MAX_BYTES": "-1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SYNAPSCRIBE_TTS_CACHE_MAX_BYTES" in proc.stderr
