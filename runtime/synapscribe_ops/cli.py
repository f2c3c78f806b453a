"""The operator tools' subcommands of `synapscribe` (COMMANDS, registered in runtime/pyproject.toml's
`synapscribe.commands` entry points) and the one small enough to live here, `contract`.

COMMANDS: name -> (module or module:Command, one-line help). A subpackage's command is its `cli`
module; only the chosen subcommand's module is imported (this one stays light: the entry point
loads it on every `synapscribe` run).
"""

from __future__ import annotations

import argparse
import json

from synapscribe.cli_types import Command

COMMANDS: dict[str, tuple[str, str]] = {
    "contract": ("synapscribe_ops.cli:CONTRACT", "print the client contract's JSON Schema"),
    "smoke": ("synapscribe_ops.smoke.cli", "post-deploy smoke test against a local or deployed stack"),
    "demo": ("synapscribe_ops.demo", "start the local stack, run the smoke test against it, stop"),
    "bench": ("synapscribe_ops.bench.cli", "benchmarks: pipeline, validation, synth, full"),
    "capacity": (
        "synapscribe_ops.capacity.cli",
        "capacity planner: KV cache, lecture limits, instances, cost",
    ),
    "preflight": (
        "synapscribe_ops.preflight",
        "before `cdk deploy`: AMI, spot vCPU quota, zones, CDK bootstrap and CORS in the target account",
    ),
    "simulate": ("synapscribe_ops.simulate.cli", "simulate a day of students against the scaling policies"),
    "ami": (
        "synapscribe_ops.ami.cli",
        "the GPU image pipeline: bake, verify, promote, rollout, rollback, prune",
    ),
}


# `synapscribe contract`: the client contract, generated from synapscribe.contract: its JSON Schema
# (`--schema`, the default) or its document (`--markdown`, committed as docs/contract.md).


def _contract_arguments(parser: argparse.ArgumentParser) -> None:
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--schema", action="store_true", help="print the JSON Schema (default)")
    form.add_argument(
        "--markdown", action="store_true", help="print the contract's document (docs/contract.md)"
    )


def _contract_run(args: argparse.Namespace) -> int:
    if args.markdown:
        from synapscribe_ops.contract_doc import render

        print(render(), end="")
        return 0
    from synapscribe.contract import client_json_schema

    print(json.dumps(client_json_schema(), indent=2))
    return 0


CONTRACT = Command(_contract_arguments, _contract_run)
