"""`synapscribe standin` flags and environment: latency model resolution, bad input exits 2."""

from __future__ import annotations

import argparse

import pytest
from synapscribe.cli import main
from synapscribe_local.standin.cli import LatencyEnvError, add_arguments, resolve_latency
from synapscribe_local.standin.config import REPORT_LATENCY, Latency


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_zero_latency_and_platform_values() -> None:
    args = parse()
    assert resolve_latency(args, {}) == Latency()
    assert args.port == 8000 and args.host == "127.0.0.1"


def test_environment_then_flags_override() -> None:
    env = {"SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS": "0.4", "SYNAPSCRIBE_STANDIN_ANSWER_TOKENS": "99"}
    assert resolve_latency(parse(), env) == Latency(first_token_seconds=0.4, answer_tokens=99)
    latency = resolve_latency(parse("--first-token-seconds", "0.1", "--tokens-per-second", "40"), env)
    assert latency == Latency(first_token_seconds=0.1, tokens_per_second=40, answer_tokens=99)


def test_report_latencies() -> None:
    assert resolve_latency(parse("--report-latencies"), {}) == REPORT_LATENCY
    assert REPORT_LATENCY.transcription_seconds == 1.8 and REPORT_LATENCY.tokens_per_second == 40


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SYNAPSCRIBE_STANDIN_TRANSCRIPTION_SECONDS", "soon"), ("SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND", "-1"),
     ("SYNAPSCRIBE_STANDIN_ANSWER_TOKENS", "0"), ("SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS", "nan")],
)  # fmt: skip
def test_bad_environment_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(LatencyEnvError, match=variable):
        resolve_latency(parse(), {variable: value})


def test_bad_environment_exits_2_before_serving(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND", "fast")
    assert main(["standin", "--port", "1"]) == 2
    assert "SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--port", "70000"], "--port"), (["--first-token-seconds", "-1"], "--first-token-seconds"),
     (["--answer-tokens", "zero"], "--answer-tokens"), (["--max-model-len", "0"], "--max-model-len"),
     (["--served-model-name", " "], "--served-model-name")],
)  # fmt: skip
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["standin", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_context_length_beyond_the_model_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["standin", "--port", "1", "--max-model-len", "65536"]) == 2
    assert "--max-model-len" in capsys.readouterr().err
