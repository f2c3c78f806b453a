"""`synapscribe contract`: the client contract, generated from contract.py: its JSON Schema
(`--schema`, the default) or its document (`--markdown`, committed as docs/contract.md)."""

from __future__ import annotations

import argparse
import json

from synapscribe.contract import client_json_schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--schema", action="store_true", help="print the JSON Schema (default)")
    form.add_argument(
        "--markdown", action="store_true", help="print the contract's document (docs/contract.md)"
    )


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        from synapscribe_ops.contract_doc import render

        print(render(), end="")
        return 0
    print(json.dumps(client_json_schema(), indent=2))
    return 0
