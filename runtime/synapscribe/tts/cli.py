"""`synapscribe tts`: run the TTS service (settings from SYNAPSCRIBE_TTS_*, validated at start)."""

from __future__ import annotations

import argparse
import sys

from synapscribe.cli_types import port
from synapscribe.platform import load_platform
from synapscribe.settings import SettingsError, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port,
        default=load_platform().ports.tts,
        help="port (default: ports.tts in platform.yaml)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run(args: argparse.Namespace) -> int:
    from synapscribe.tts.engines import EngineUnavailableError
    from synapscribe.tts.settings import TtsSettings

    try:
        settings = load_settings(TtsSettings)
    except SettingsError as exc:
        print(f"synapscribe tts: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from synapscribe.tts.app import create_app
    from synapscribe.tts.service import SpeechService

    try:
        service = SpeechService.from_settings(settings)
    except EngineUnavailableError as exc:
        print(f"synapscribe tts: SYNAPSCRIBE_TTS_ENGINES: {exc}", file=sys.stderr)
        return 2
    print(
        f"synapscribe tts: engines {','.join(settings.engines)}, listening on {args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(create_app(settings, service), host=args.host, port=args.port, log_level=args.log_level)
    return 0
