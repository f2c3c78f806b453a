"""`synapscribe bench SUITE`: each suite is a module with `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib

SUITES: dict[str, tuple[str, str]] = {
    "pipeline": (
        "synapscribe_ops.bench.pipeline",
        "AgentCore against the stand-in at the report's latencies: overhead, first audio, concurrency",
    ),
    "validation": (
        "synapscribe_ops.bench.validation",
        "lecture validation time for a 2 MB and a 100 MB lecture",
    ),
    "synth": ("synapscribe_ops.bench.synth", "time of an offline `cdk synth` of the whole app"),
    "engine": (
        "synapscribe_ops.bench.engine",
        "what an audio-mode turn costs on a running vLLM: bytes, first token, cache hits, base64 vs file://",
    ),
    "full": (
        "synapscribe_ops.bench.full",
        "the validation report's tables against a local or deployed stack, with a report and plots",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    for name, (module, help_text) in SUITES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_bench_module=module)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(args._bench_module)
    return int(module.run(args) or 0)
