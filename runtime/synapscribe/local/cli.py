"""`synapscribe local --port PORT`: the whole platform on loopback until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from synapscribe.local.stack import RunningStack, StackConfig, describe, run_stack
from synapscribe.local.supervisor import StackCancelled, StackError


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, not {port}")
    return port


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {number:g}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, required=True, help="WebSocket port on 127.0.0.1")
    parser.add_argument("--log-dir", type=Path, help="where child processes log (default: a new temp dir)")
    parser.add_argument(
        "--ready-timeout", type=_positive, default=90.0, help="seconds each service may take to get ready"
    )
    parser.add_argument(
        "--info-json", type=Path, help="write the stack's endpoints (URL, moto, services) here once ready"
    )


def run(args: argparse.Namespace) -> int:
    config = StackConfig(
        port=args.port,
        vllm_base_url=os.environ.get("VLLM_BASE_URL") or None,
        vllm_model=os.environ.get("VLLM_MODEL") or None,
        log_dir=args.log_dir,
        ready_timeout=args.ready_timeout,
    )

    def on_ready(stack: RunningStack) -> None:
        info = describe(stack)
        if args.info_json:
            args.info_json.write_text(json.dumps(info, indent=2) + "\n")
        print(f"local: services {json.dumps(info['services'])}; logs in {info['logs']}", file=sys.stderr)
        print(f"READY {stack.url}", flush=True)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_stack(config, stop, on_ready)

    try:
        code = asyncio.run(main())
    except StackCancelled:
        code = 0
    except StackError as exc:
        print(f"synapscribe local: {exc}", file=sys.stderr)
        return 1
    print("local: stopped", file=sys.stderr)
    return code
