"""`synapscribe agentcore [--host] [--port]`: run AgentCore (settings from the environment).

SIGTERM drains it (see drain.py) and it exits 0."""

from __future__ import annotations

import argparse
import logging
import sys

from synapscribe.agentcore import correlation
from synapscribe.platform import load_platform
from synapscribe.settings import AwsResources, SettingsError, load_settings


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a number, not {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be between 1 and 65535, not {port}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104
        help="address to listen on (default: all; the GPU host's security group limits it)",
    )
    parser.add_argument(
        "--port", type=_port, default=load_platform().ports.agentcore, help="port (default: ports.agentcore)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    from synapscribe.agentcore.settings import AgentCoreSettings

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    correlation.install()
    try:
        settings = load_settings(AgentCoreSettings)
        platform = settings.platform()
        resources = load_settings(AwsResources)
    except SettingsError as exc:
        print(f"synapscribe agentcore: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from synapscribe.agentcore.app import create_app
    from synapscribe.agentcore.drain import Drain, DrainingServer

    drain = Drain(settings.drain_timeout(platform))
    config = uvicorn.Config(
        create_app(settings, resources, drain=drain),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        # The diagnostics trust the socket's peer address: never a client-supplied header.
        proxy_headers=False,
        # Open connections are short (every job is answered 202 at once); the drain came first.
        timeout_graceful_shutdown=5,
    )
    DrainingServer(config, drain).run()
    return 0
