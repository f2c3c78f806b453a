"""`synapscribe platform`: the shared configuration with its derived values, for Ansible and people."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from synapscribe.platform import PlatformConfigError, load_platform, load_platform_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
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
