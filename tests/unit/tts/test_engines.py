"""The real engines: espeak-ng makes MP3; gTTS gets a timeout and its failures become EngineErrors."""

from __future__ import annotations

import io
import shutil
import socket
from typing import Any

import pytest
import requests
from mutagen.mp3 import MP3
from synapscribe.tts.engines import (
    EngineError,
    EngineUnavailableError,
    EspeakEngine,
    GttsEngine,
    RateLimitedError,
)
from synapscribe.tts.voices import VOICES


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("encoder", ["sox", "ffmpeg"])
def test_espeak_makes_valid_mp3(encoder: str) -> None:
    engine = EspeakEngine(bitrate_kbps=32)
    engine.check()
    engine._encoder = encoder
    audio = engine.synthesize("The Calvin cycle fixes carbon dioxide.", VOICES["en"])
    info = MP3(io.BytesIO(audio)).info
    assert 1.0 < info.length < 10.0
    assert info.channels == 1 and info.bitrate == 32000


def test_espeak_prefers_sox_and_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EspeakEngine()
    engine.check()
    assert engine._encoder == "sox"
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "espeak-ng" else "/usr/bin/" + name)
    with pytest.raises(EngineUnavailableError, match="espeak-ng is not installed"):
        EspeakEngine().check()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/espeak-ng" if name == "espeak-ng" else None)
    with pytest.raises(EngineUnavailableError, match="sox with MP3 support"):
        EspeakEngine().check()


def test_service_refuses_to_start_without_its_offline_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from synapscribe.cli import main

    monkeypatch.setenv("SYNAPSCRIBE_TTS_ENGINES", "espeak-ng")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["tts", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "SYNAPSCRIBE_TTS_ENGINES" in err and "espeak-ng is not installed" in err


def test_espeak_reads_text_from_stdin_so_dashes_are_not_options() -> None:
    audio = EspeakEngine().synthesize("--help -v xx", VOICES["en"])
    assert MP3(io.BytesIO(audio)).info.length > 0.3


def test_espeak_failure_is_an_engine_error() -> None:
    bad_voice = VOICES["en"].__class__("xx", "en", None, "zzqq")
    with pytest.raises(EngineError, match="espeak-ng"):
        EspeakEngine().synthesize("Hello.", bad_voice)


def test_gtts_unreachable_fails_fast_with_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, refused)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(EngineError, match="gTTS"):
        GttsEngine(timeout_seconds=2).synthesize("Hello.", VOICES["en"])


def _fake_send(status: int, headers: dict[str, str], body: bytes = b"") -> tuple[Any, list[Any]]:
    seen: list[Any] = []

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        seen.append(kwargs.get("timeout"))
        rsp = requests.Response()
        rsp.status_code = status
        rsp.reason = "Too Many Requests" if status == 429 else "OK"
        rsp.headers.update(headers)
        rsp.raw = io.BytesIO(body)
        rsp.request = request
        rsp.url = request.url or ""
        return rsp

    return send, seen


def test_gtts_429_becomes_rate_limited_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    send, seen = _fake_send(429, {"Retry-After": "7"})
    monkeypatch.setattr(requests.Session, "send", send)
    with pytest.raises(RateLimitedError) as info:
        GttsEngine(timeout_seconds=3.5).synthesize("Hello.", VOICES["en"])
    assert info.value.retry_after == 7.0
    # gTTS waits forever without a timeout: every HTTP request must carry ours.
    assert seen == [3.5]


def test_gtts_server_error_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    send, _ = _fake_send(500, {})
    monkeypatch.setattr(requests.Session, "send", send)
    with pytest.raises(EngineError) as info:
        GttsEngine(timeout_seconds=1).synthesize("Hello.", VOICES["en"])
    assert not isinstance(info.value, RateLimitedError)


def test_gtts_returns_the_audio_google_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    mp3 = b"\xff\xf3fake-mp3-bytes"
    line = 'jQ1olc","[\\"' + base64.b64encode(mp3).decode() + '\\"]'
    send, seen = _fake_send(200, {}, (line + "\n").encode())
    monkeypatch.setattr(requests.Session, "send", send)
    text = "A sentence long enough to need two requests to Google, because gTTS cuts text into pieces " * 2
    assert GttsEngine(timeout_seconds=1).synthesize(text, VOICES["en-gb"]) == mp3 * len(seen)
    assert len(seen) >= 2
