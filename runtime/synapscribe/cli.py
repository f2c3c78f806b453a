"""The `synapscribe` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines `add_arguments(parser)` and `run(args) -> int`; add it to COMMANDS
(product) or to its package's `commands.COMMANDS` (tools, local stack: see COMMAND_GROUP).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType
from typing import Any

from synapscribe.cli_types import Parser
from synapscribe.orphans import exit_with_parent

#: name -> (module, one-line help): the product's own subcommands (what the hosts run).
COMMANDS: dict[str, tuple[str, str]] = {
    "platform": (
        "synapscribe.platform_cli",
        "print the shared platform configuration and its derived limits",
    ),
    "agentcore": ("synapscribe.agentcore.cli", "run AgentCore, the query service (port ports.agentcore)"),
    "tts": ("synapscribe.tts.cli", "run the TTS service (port ports.tts)"),
}
#: Entry-point group through which other installed packages add subcommands: each entry loads a
#: dict like COMMANDS (the operator tools and the local stack register theirs in
#: runtime/pyproject.toml), so this module never imports them and the hosts' wheel lacks them.
COMMAND_GROUP = "synapscribe.commands"


def commands() -> dict[str, tuple[str, str]]:
    """Every subcommand: the product's, then those of each package registered in COMMAND_GROUP."""
    found = dict(COMMANDS)
    for entry in sorted(metadata.entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        for name, spec in entry.load().items():
            if name in found:
                raise RuntimeError(
                    f"subcommand {name!r} of {entry.value} is already taken by {found[name][0]}"
                )
            found[name] = spec
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="synapscribe", description="SynapScribe platform tools and services")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in commands().items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def command_parser(name: str, **options: Any) -> tuple[argparse.ArgumentParser, ModuleType]:
    """The parser of `synapscribe NAME …` (and the subcommand's module); `options` go to the
    top-level Parser (e.g. exit_on_error=False)."""
    parser = Parser(prog="synapscribe", **options)
    sub = parser.add_subparsers(dest="command", required=True)
    module_name, help_text = commands()[name]
    module = importlib.import_module(module_name)
    module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen subcommand's module (services start fast, tools stay light).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in commands():
        parser, module = command_parser(chosen)
    else:
        # No known command: let argparse print the list of commands or the error (exit 2).
        build_parser().parse_args(argv)
        return 2
    args = parser.parse_args(argv)
    # A service started by `synapscribe local` (or a test) stops when its parent is gone.
    exit_with_parent()
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
