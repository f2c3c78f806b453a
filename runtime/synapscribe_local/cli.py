"""`synapscribe local --port PORT`: the whole platform on loopback until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from synapscribe.cli_types import port, positive_float

from synapscribe_local.stack import RunningStack, StackConfig, describe, run_stack
from synapscribe_local.supervisor import StackCancelled, StackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, required=True, help="WebSocket port on 127.0.0.1")
    parser.add_argument("--log-dir", type=Path, help="where child processes log (default: a new temp dir)")
    parser.add_argument(
        "--ready-timeout",
        type=positive_float,
        default=90.0,
        help="seconds each service may take to get ready",
    )
    parser.add_argument(
        "--page-port",
        type=port,
        default=0,
        help="port of the student page on 127.0.0.1 (default: a free one)",
    )
    parser.add_argument(
        "--sweep-interval",
        type=positive_float,
        help="seconds between sweeper runs (default: platform.yaml sweeper.interval_seconds)",
    )
    parser.add_argument(
        "--fleet-at-zero",
        action="store_true",
        help="emulate the GPU fleet at zero on moto's Auto Scaling: AgentCore starts only when a "
        "question scales the group out (the client gets `warming` first)",
    )
    parser.add_argument(
        "--agentcore-hosts",
        type=int,
        choices=range(1, 5),
        default=1,
        metavar="N",
        help="AgentCore hosts on the one model server, routed to by lecture through the host registry "
        "(default 1: one host, no registry); a host that dies stays gone, as a spot-interrupted one",
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
        page_port=args.page_port,
        sweep_interval_seconds=args.sweep_interval,
        fleet_at_zero=args.fleet_at_zero,
        agentcore_hosts=args.agentcore_hosts,
    )

    def on_ready(stack: RunningStack) -> None:
        info = describe(stack)
        if args.info_json:
            args.info_json.write_text(json.dumps(info, indent=2) + "\n")
        print(f"local: services {json.dumps(info['services'])}; logs in {info['logs']}", file=sys.stderr)
        print(f"PAGE {stack.page_url}", flush=True)
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
