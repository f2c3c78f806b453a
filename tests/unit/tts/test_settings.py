"""TTS settings from the environment, and the service refusing to start on a wrong value."""

from __future__ import annotations

import argparse

import pytest
from synapscribe.cli import main
from synapscribe.platform import load_platform
from synapscribe.settings import SettingsError, load_settings
from synapscribe.tts.settings import TtsSettings


def test_defaults_come_from_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGINES", "GTTS_TIMEOUT_SECONDS", "GTTS_RETRIES", "DEFAULT_VOICE"):
        monkeypatch.delenv(f"SYNAPSCRIBE_TTS_{name}", raising=False)
    s = load_settings(TtsSettings)
    p = load_platform().tts
    assert s.engines == ("gtts", "espeak-ng")
    assert s.gtts_timeout_seconds == p.gtts_timeout_seconds
    assert s.gtts_retries == p.gtts_retries
    assert s.default_voice == p.default_voice


@pytest.mark.parametrize(
    ("value", "engines"),
    [
        ("espeak-ng", ("espeak-ng",)),
        (" gtts , espeak-ng ", ("gtts", "espeak-ng")),
        ("espeak-ng,gtts", ("espeak-ng", "gtts")),
    ],
)
def test_engine_list(monkeypatch: pytest.MonkeyPatch, value: str, engines: tuple[str, ...]) -> None:
    monkeypatch.setenv("SYNAPSCRIBE_TTS_ENGINES", value)
    assert load_settings(TtsSettings).engines == engines


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SYNAPSCRIBE_TTS_ENGINES", "polly", "Input should be 'gtts' or 'espeak-ng'"),
        ("SYNAPSCRIBE_TTS_ENGINES", "", "comma-separated list"),
        ("SYNAPSCRIBE_TTS_ENGINES", "gtts,,espeak-ng", "comma-separated list"),
        ("SYNAPSCRIBE_TTS_ENGINES", "gtts,gtts", "listed twice"),
        ("SYNAPSCRIBE_TTS_SIMULATED_LATENCY_MS", "-5", "greater than or equal to 0"),
        ("SYNAPSCRIBE_TTS_SIMULATED_LATENCY_MS", "soon", "valid integer"),
        ("SYNAPSCRIBE_TTS_CACHE_MAX_BYTES", "lots", "valid integer"),
        ("SYNAPSCRIBE_TTS_GTTS_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("SYNAPSCRIBE_TTS_GTTS_TLD", "google.com/evil", "pattern"),
    ],
)
def test_wrong_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(TtsSettings)
    assert name in str(info.value)
    assert message in str(info.value)


def test_the_service_refuses_to_start_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNAPSCRIBE_TTS_ENGINES", "gtts,festival")
    assert main(["tts", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "SYNAPSCRIBE_TTS_ENGINES" in err and "festival" in err


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_bad_port_flag_exits_2_naming_the_flag(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tts", "--port", port])
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_default_port_is_the_platform_port() -> None:
    from synapscribe.tts.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).port == load_platform().ports.tts
