"""AgentCore's start-up validation: a wrong environment stops it with the variable's name."""

from __future__ import annotations

import subprocess
import sys

import pytest
from synapscribe.agentcore.settings import AgentCoreSettings
from synapscribe.platform import PlatformConfig
from synapscribe.settings import SettingsError, load_settings

GOOD = {
    "VLLM_BASE_URL": "http://127.0.0.1:8000/v1",
    "SYNAPSCRIBE_TTS_URL": "http://127.0.0.1:8001",
    "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9000",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        *GOOD,
        "VLLM_MODEL",
        "VLLM_API_KEY",
        "SYNAPSCRIBE_MAX_MODEL_LEN",
        "SYNAPSCRIBE_MAX_NUM_SEQS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults_come_from_the_platform(env: pytest.MonkeyPatch, platform: PlatformConfig) -> None:
    s = load_settings(AgentCoreSettings)
    assert s.vllm_model == platform.model.served_name
    assert s.platform() is platform
    assert s.limits(platform) == (
        platform.vllm.max_num_seqs,
        platform.agentcore.queue_timeout_seconds,
        platform.agentcore.upstream_timeout_seconds,
    )


def test_max_model_len_override_moves_the_limits(env: pytest.MonkeyPatch, platform: PlatformConfig) -> None:
    env.setenv("SYNAPSCRIBE_MAX_MODEL_LEN", "32768")
    p = load_settings(AgentCoreSettings).platform()
    assert p.vllm.max_model_len == 32768
    assert p.max_audio_lecture_seconds > platform.max_audio_lecture_seconds


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VLLM_BASE_URL", "not a url"),
        ("SYNAPSCRIBE_TTS_URL", "ftp://x"),
        ("SYNAPSCRIBE_CONNECTIONS_ENDPOINT", ""),
        ("SYNAPSCRIBE_MAX_NUM_SEQS", "0"),
        ("SYNAPSCRIBE_QUEUE_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_bad_values_name_the_variable(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(AgentCoreSettings)


def test_missing_variable_is_named(env: pytest.MonkeyPatch) -> None:
    env.delenv("VLLM_BASE_URL")
    with pytest.raises(SettingsError, match="VLLM_BASE_URL"):
        load_settings(AgentCoreSettings)


def test_max_model_len_beyond_the_model_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("SYNAPSCRIBE_MAX_MODEL_LEN", "65536")
    with pytest.raises(SettingsError, match="SYNAPSCRIBE_MAX_MODEL_LEN"):
        load_settings(AgentCoreSettings).platform()


def test_the_command_exits_naming_the_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("VLLM_BASE_URL", "nope")
    proc = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "agentcore", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "VLLM_BASE_URL" in proc.stderr


def test_bad_port_flag_is_named() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "agentcore", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--port" in proc.stderr
