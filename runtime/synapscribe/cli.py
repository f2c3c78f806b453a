"""The `synapscribe` command, and its `platform` subcommand. Each package has one `cli.py`.

A subcommand is anything with `add_arguments(parser)` and `run(args) -> int`: a subpackage's
`cli` module (`synapscribe.agentcore.cli`) or a `Command` in its package's `cli.py`
(`synapscribe.cli:PLATFORM`). Add it to COMMANDS (product) or to its package's `cli.COMMANDS`
(tools, local stack: see COMMAND_GROUP). Only the chosen one's module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from synapscribe.cli_types import Command, Parser
from synapscribe.orphans import exit_with_parent

# `synapscribe platform`: the shared configuration with its derived values, for Ansible and people.


def _platform_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("json", "yaml"), default="yaml")
    parser.add_argument(
        "--max-model-len",
        type=int,
        metavar="TOKENS",
        help="show the configuration at another context length (e.g. 32768)",
    )
    parser.add_argument("--file", type=Path, help="read this platform.yaml instead of the packaged one")
    parser.add_argument(
        "--log-groups",
        metavar="ENV",
        help="print only the GPU fleet's CloudWatch log group names of this environment (cdk.json's, e.g. dev)",
    )


def _platform_run(args: argparse.Namespace) -> int:
    import yaml

    from synapscribe.platform import PlatformConfigError, load_platform, load_platform_file

    try:
        platform = load_platform_file(args.file) if args.file else load_platform()
        if args.max_model_len is not None:
            platform = platform.with_max_model_len(args.max_model_len)
    except (PlatformConfigError, ValueError) as exc:
        print(f"synapscribe platform: {exc}", file=sys.stderr)
        return 2
    if args.log_groups is not None:
        try:
            data = platform.fleet.log_groups.names(args.log_groups)
        except ValueError as exc:
            print(f"synapscribe platform: --log-groups: {exc}", file=sys.stderr)
            return 2
    else:
        data = platform.as_dict()
    if args.format == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


PLATFORM = Command(_platform_arguments, _platform_run)


#: name -> (module or module:Command, one-line help): the product's own subcommands (what the hosts run).
COMMANDS: dict[str, tuple[str, str]] = {
    "platform": (
        "synapscribe.cli:PLATFORM",
        "print the shared platform configuration and its derived limits",
    ),
    "agentcore": ("synapscribe.agentcore.cli", "run AgentCore, the query service (port ports.agentcore)"),
    "tts": ("synapscribe.tts.cli", "run the TTS service (port ports.tts)"),
}
#: Entry-point group through which other installed packages add subcommands: each entry loads a
#: dict like COMMANDS (the operator tools and the local stack register their `cli.COMMANDS` in
#: runtime/pyproject.toml), so this module never imports them and the hosts' wheel lacks them.
COMMAND_GROUP = "synapscribe.commands"


def _registered(entry: metadata.EntryPoint) -> dict[str, tuple[str, str]]:
    try:
        table: dict[str, tuple[str, str]] = entry.load()
    except (ImportError, AttributeError) as exc:
        # An editable install keeps the entry points of when it was made: say how to renew them.
        raise RuntimeError(
            f"the {COMMAND_GROUP} entry point {entry.name} = {entry.value} cannot be loaded ({exc}); "
            "reinstall the tools (make setup, or pip install -e ./runtime) to read runtime/pyproject.toml again"
        ) from None
    return table


def commands() -> dict[str, tuple[str, str]]:
    """Every subcommand: the product's, then those of each package registered in COMMAND_GROUP."""
    found = dict(COMMANDS)
    for entry in sorted(metadata.entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        for name, spec in _registered(entry).items():
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


def load_command(target: str) -> Any:
    """The subcommand `target` names: "package.module" (the module) or "package.module:NAME"."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def command_parser(name: str, **options: Any) -> tuple[argparse.ArgumentParser, Any]:
    """The parser of `synapscribe NAME …` (and the subcommand); `options` go to the top-level
    Parser (e.g. exit_on_error=False)."""
    parser = Parser(prog="synapscribe", **options)
    sub = parser.add_subparsers(dest="command", required=True)
    target, help_text = commands()[name]
    command = load_command(target)
    command.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser, command


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen subcommand's module (services start fast, tools stay light).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in commands():
        parser, command = command_parser(chosen)
    else:
        # No known command: let argparse print the list of commands or the error (exit 2).
        build_parser().parse_args(argv)
        return 2
    args = parser.parse_args(argv)
    # A service started by `synapscribe local` (or a test) stops when its parent is gone.
    exit_with_parent()
    return int(command.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
