"""`synapscribe contract`: the client contract's JSON Schema, generated from contract.py."""

from __future__ import annotations

import argparse
import json

from synapscribe.contract import client_json_schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schema", action="store_true", default=True, help="print the JSON Schema (default)")


def run(args: argparse.Namespace) -> int:
    print(json.dumps(client_json_schema(), indent=2))
    return 0
