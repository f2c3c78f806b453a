"""The shared argparse value types: what they accept and what their errors name."""

from __future__ import annotations

import argparse

import pytest
from synapscribe.cli_types import (
    comma_list,
    integer,
    non_empty,
    non_negative_float,
    non_negative_int,
    number,
    port,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (positive_int, "1", 1),
        (non_negative_int, "0", 0),
        (positive_float, "0.5", 0.5),
        (non_negative_float, "0", 0.0),
        (port, "65535", 65535),
        (integer(minimum=1, maximum=20), "20", 20),
        (number(above=0, maximum=9), "9", 9.0),
        (number(minimum=0.1, maximum=1024), "0.1", 0.1),
        (non_empty, "x", "x"),
        (comma_list(positive_int), "1, 2,,4", [1, 2, 4]),
    ],
)
def test_accepts(kind: object, text: str, value: object) -> None:
    assert kind(text) == value  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (positive_int, "1.5", "not a whole number: '1.5'"),
        (positive_int, "0", "must be at least 1, got '0'"),
        (non_negative_int, "-1", "must be zero or more, got '-1'"),
        (positive_float, "x", "not a number: 'x'"),
        (positive_float, "0", "must be positive, got '0'"),
        (non_negative_float, "-0.1", "must be zero or more, got '-0.1'"),
        (non_negative_float, "inf", "must be a finite number, got 'inf'"),
        (positive_float, "nan", "must be a finite number, got 'nan'"),
        (port, "http", "not a port number: 'http'"),
        (port, "0", "must be a port number between 1 and 65535, got '0'"),
        (port, "65536", "must be a port number between 1 and 65535, got '65536'"),
        (integer(minimum=1, maximum=20), "21", "must be between 1 and 20, got '21'"),
        (
            number(above=0, maximum=9, note="an audio-mode lecture"),
            "9.5",
            "must be more than 0 and at most 9 (an audio-mode lecture), got '9.5'",
        ),
        (number(above=0, maximum=9), "0", "must be more than 0 and at most 9, got '0'"),
        (
            number(minimum=0.1, maximum=1024, unit="MiB"),
            "2000",
            "must be between 0.1 and 1024 MiB, got '2000'",
        ),
        (non_empty, "  ", "must not be empty"),
        (comma_list(positive_int), " , ", "expected a comma-separated list, got ' , '"),
        (comma_list(positive_int), "1,0", "must be at least 1, got '0'"),
    ],
)
def test_rejects_with_the_expected_value(kind: object, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        kind(text)  # type: ignore[operator]
    assert str(err.value) == message


def test_the_flag_is_named_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--port", type=port)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--port", "0"])
    assert exit_.value.code == 2
    assert "argument --port: must be a port number between 1 and 65535, got '0'" in capsys.readouterr().err


def test_minimum_and_above_are_exclusive() -> None:
    with pytest.raises(ValueError, match="minimum or above"):
        number(minimum=0, above=0)
