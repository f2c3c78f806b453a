"""`synapscribe bench synth`: how long an offline synth of the whole CDK app takes.

Runs the real `cdk synth` (the npm CLI in node_modules) or `python cdk/app.py` into a temporary
directory, with no AWS access needed (the account and region default to placeholders when the
CDK variables are unset), and prints the seconds each run took. The goal is under 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synapscribe.cli_types import integer

GOAL_SECONDS = 30.0
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_REGION = "eu-west-1"


RUNS = integer(minimum=1, maximum=20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help="CDK environment from cdk.json (default dev)")
    parser.add_argument(
        "--via",
        choices=("cli", "app"),
        default="cli",
        help="cli: the real `cdk synth` (default); app: `python cdk/app.py` without the CLI",
    )
    parser.add_argument("--runs", type=RUNS, default=1, help="number of synths (default 1)")
    parser.add_argument("--repo", type=Path, default=None, help="checkout with cdk.json (default: found)")


def find_repo(start: Path | None = None) -> Path:
    """The directory holding cdk.json: upwards from the working directory, then from this file."""
    for origin in (start or Path.cwd(), Path(__file__).resolve()):
        for candidate in (origin, *origin.parents):
            if (candidate / "cdk.json").is_file() and (candidate / "cdk" / "app.py").is_file():
                return candidate
    raise FileNotFoundError("no cdk.json with cdk/app.py above the working directory or the package")


def synth_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CDK_DEFAULT_ACCOUNT", PLACEHOLDER_ACCOUNT)
    env.setdefault(
        "CDK_DEFAULT_REGION", env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or PLACEHOLDER_REGION
    )
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    env.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    return env


def command(repo: Path, via: str, env_name: str, outdir: Path) -> list[str]:
    if via == "cli":
        cli = repo / "node_modules" / ".bin" / "cdk"
        if not cli.exists():
            raise FileNotFoundError(f"{cli} is missing: run scripts/setup")
        return [str(cli), "synth", "--quiet", "--no-notices", "-o", str(outdir), "-c", f"env={env_name}"]
    # Without the CLI, the app takes its output directory and context from the environment.
    return [sys.executable, str(repo / "cdk" / "app.py")]


def synth_once(repo: Path, via: str, env_name: str) -> tuple[float, int]:
    """Seconds one synth took and the number of stacks it wrote; raises RuntimeError on failure."""
    with tempfile.TemporaryDirectory(prefix="synapscribe-synth-") as tmp:
        outdir = Path(tmp) / "cdk.out"
        env = synth_environment()
        cmd = command(repo, via, env_name, outdir)
        if via == "app":
            env["CDK_OUTDIR"] = str(outdir)
            env["CDK_CONTEXT_JSON"] = json.dumps({"env": env_name})
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(
                f"synth failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}"
            )
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks = sum(1 for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack")
        return elapsed, stacks


def run(args: argparse.Namespace) -> int:
    try:
        repo = (args.repo or find_repo()).resolve()
        times = []
        for index in range(args.runs):
            seconds, stacks = synth_once(repo, args.via, args.env)
            times.append(seconds)
            print(
                f"synth {index + 1}/{args.runs} ({args.via}, env={args.env}): {seconds:.1f} s, {stacks} stacks"
            )
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"bench synth: {exc}", file=sys.stderr)
        return 1
    median = statistics.median(times)
    verdict = "within" if median < GOAL_SECONDS else "OVER"
    print(
        f"synth seconds: median {median:.1f}, min {min(times):.1f}, max {max(times):.1f} "
        f"({verdict} the {GOAL_SECONDS:.0f} s goal)"
    )
    return 0
