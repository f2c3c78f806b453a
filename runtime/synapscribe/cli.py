"""The `synapscribe` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines `add_arguments(parser)` and `run(args) -> int`; add it to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from synapscribe.cli_types import Parser
from synapscribe.orphans import exit_with_parent

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "platform": (
        "synapscribe.platform_cli",
        "print the shared platform configuration and its derived limits",
    ),
    "contract": ("synapscribe.contract_cli", "print the client contract's JSON Schema"),
    "agentcore": ("synapscribe.agentcore.cli", "run AgentCore, the query service (port ports.agentcore)"),
    "tts": ("synapscribe.tts.cli", "run the TTS service (port ports.tts)"),
    "standin": (
        "synapscribe.standin.cli",
        "run the model server stand-in (vLLM's OpenAI-compatible API, for tests and the local stack)",
    ),
    "sample-audio": ("synapscribe.audiogen_cli", "generate a spoken sample lecture or question"),
    "local": ("synapscribe.local.cli", "run the whole platform on loopback (nothing from AWS)"),
    "smoke": ("synapscribe.smoke.cli", "post-deploy smoke test against a local or deployed stack"),
    "demo": ("synapscribe.local.demo", "start the local stack, run the smoke test against it, stop"),
    "bench": ("synapscribe.bench.cli", "benchmarks: pipeline, validation, synth, full"),
    "capacity": ("synapscribe.capacity_cli", "capacity planner: KV cache, lecture limits, instances, cost"),
    "preflight": (
        "synapscribe.preflight",
        "before `cdk deploy`: AMI, spot vCPU quota, zones, CDK bootstrap and CORS in the target account",
    ),
    "simulate": ("synapscribe.simulate.cli", "simulate a day of students against the scaling policies"),
    "ami": ("synapscribe.ami.cli", "the GPU image pipeline: bake, verify, promote, rollout, rollback, prune"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="synapscribe", description="SynapScribe platform tools and services")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def command_parser(name: str, **options: Any) -> tuple[argparse.ArgumentParser, ModuleType]:
    """The parser of `synapscribe NAME …` (and the subcommand's module); `options` go to the
    top-level Parser (e.g. exit_on_error=False)."""
    parser = Parser(prog="synapscribe", **options)
    sub = parser.add_subparsers(dest="command", required=True)
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen subcommand's module (services start fast, tools stay light).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in COMMANDS:
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
