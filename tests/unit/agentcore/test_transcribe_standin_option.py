"""The stand-in's test option that forces a transcription to stop short (finish_reason `length`):
flag over environment, bad values refused naming the variable, answers never affected."""

from __future__ import annotations

import argparse
import base64
import dataclasses
from pathlib import Path

import httpx
import pytest
from synapscribe.cli import main
from synapscribe_local import audiogen
from synapscribe_local.standin.cli import (
    TRANSCRIPTION_MAX_TOKENS_ENV,
    LatencyEnvError,
    add_arguments,
    resolve_transcription_max_tokens,
)
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.server import create_app
from synapscribe_local.standin.tokens import split_text


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_off_by_default_then_environment_then_flag() -> None:
    assert resolve_transcription_max_tokens(parse(), {}) is None
    assert resolve_transcription_max_tokens(parse(), {TRANSCRIPTION_MAX_TOKENS_ENV: "12"}) == 12
    flagged = parse("--transcription-max-tokens", "3")
    assert resolve_transcription_max_tokens(flagged, {TRANSCRIPTION_MAX_TOKENS_ENV: "12"}) == 3


@pytest.mark.parametrize("value", ["0", "-4", "many"])
def test_bad_environment_value_names_the_variable(value: str) -> None:
    with pytest.raises(LatencyEnvError, match=TRANSCRIPTION_MAX_TOKENS_ENV):
        resolve_transcription_max_tokens(parse(), {TRANSCRIPTION_MAX_TOKENS_ENV: value})


def test_bad_flag_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["standin", "--transcription-max-tokens", "0"])
    assert exc.value.code == 2 and "--transcription-max-tokens" in capsys.readouterr().err


def test_bad_environment_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TRANSCRIPTION_MAX_TOKENS_ENV, "zero")
    assert main(["standin", "--port", "1"]) == 2
    assert TRANSCRIPTION_MAX_TOKENS_ENV in capsys.readouterr().err


def _chat(audio_b64: str, instruction: str) -> dict[str, object]:
    return {
        "model": StandinConfig.from_platform().served_name,
        "max_tokens": 200,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "mp3"}},
                    {"type": "text", "text": instruction},
                ],
            }
        ],
    }


async def test_only_transcriptions_are_cut(tmp_path: Path) -> None:
    clip = audiogen.speak("What does rubisco fix?", tmp_path / "q.mp3").path.read_bytes()
    b64 = base64.b64encode(clip).decode()
    config = dataclasses.replace(StandinConfig.from_platform(), transcription_max_tokens=2)
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as http:
        cut = (await http.post("/v1/chat/completions", json=_chat(b64, "Transcribe this audio."))).json()
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["choices"][0]["message"]["content"] == "".join(split_text("[stand-in] What")[:2])
        assert cut["usage"]["completion_tokens"] == 2
        answer = (await http.post("/v1/chat/completions", json=_chat(b64, "Answer it."))).json()
        assert answer["choices"][0]["finish_reason"] == "stop"
        assert "You asked: What does rubisco fix?" in answer["choices"][0]["message"]["content"]
