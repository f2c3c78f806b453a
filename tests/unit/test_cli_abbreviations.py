"""No parser of the runtime expands an abbreviated flag: `--student 40` is refused, naming it."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator

import pytest
from synapscribe.cli import command_parser, commands, main


def subcommand_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under `parser`, with the words that reach it (bench pipeline, …)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from subcommand_parsers(child, (*path, name))


def every_long_flag() -> list[tuple[str, str]]:
    """(command words, flag) for every long flag of every (nested) subcommand."""
    found: list[tuple[str, str]] = []
    for name in commands():
        parser, _ = command_parser(name)
        for words, sub in subcommand_parsers(parser):
            for action in sub._actions:
                found += [
                    (" ".join(words), o)
                    for o in action.option_strings
                    if o.startswith("--") and len(o) > 4 and o != "--help"
                ]
    return found


FLAGS = every_long_flag()


def test_every_subcommand_has_flags_to_check() -> None:
    commands = {words.split()[0] for words, _ in FLAGS}
    assert len(FLAGS) > 30
    assert {"capacity", "local", "smoke", "bench", "sample-audio"} <= commands


@pytest.mark.parametrize(("words", "flag"), FLAGS, ids=[f"{w} {f}" for w, f in FLAGS])
def test_an_abbreviated_flag_is_refused(words: str, flag: str) -> None:
    parser, _ = command_parser(words.split()[0])
    # Required arguments would be reported before unknown ones: lift them so the only possible
    # error is the abbreviation itself (with abbreviations allowed, this parse would succeed or
    # complain about the full flag's value instead).
    for _, sub in subcommand_parsers(parser):
        for action in sub._actions:
            if not isinstance(action, argparse._SubParsersAction):
                action.required = False
        for group in sub._mutually_exclusive_groups:
            group.required = False
    abbrev = flag[:-1]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        parser.parse_args([*words.split(), abbrev, "1"])
    assert exc.value.code == 2
    assert f"unrecognized arguments: {abbrev} 1" in err.getvalue(), err.getvalue()


def test_a_misspelt_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["local", "--prot", "1"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --prot (the following arguments are required: --port)" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["capacity", "--student", "40"])
    assert "unrecognized arguments: --student 40" in capsys.readouterr().err


def test_a_misspelt_flag_is_named_even_with_the_required_ones_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["local", "--port", "8765", "--ready-timeoutt", "5"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --ready-timeoutt 5" in capsys.readouterr().err


def test_a_stale_entry_point_says_how_to_renew_it() -> None:
    from importlib import metadata

    from synapscribe.cli import COMMAND_GROUP, _registered

    stale = metadata.EntryPoint("ops", "synapscribe_ops.commands:COMMANDS", COMMAND_GROUP)
    with pytest.raises(
        RuntimeError, match=r"ops = synapscribe_ops\.commands:COMMANDS cannot be loaded .*make setup"
    ):
        _registered(stale)
