"""The local stack's and the test doubles' subcommands of `synapscribe` (COMMANDS, registered in
runtime/pyproject.toml's `synapscribe.commands` entry points), with two of them here: `local`
(the whole platform on loopback until SIGINT or SIGTERM) and `sample-audio` (generated speech).

COMMANDS: name -> (module or module:Command, one-line help). The entry point loads this module on
every `synapscribe` run, so what a command needs is imported when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from synapscribe.cli_types import Command, non_empty, number, port, positive_float

if TYPE_CHECKING:
    from synapscribe_local.stack import RunningStack

COMMANDS: dict[str, tuple[str, str]] = {
    "standin": (
        "synapscribe_local.standin.cli",
        "run the model server stand-in (vLLM's OpenAI-compatible API, for tests and the local stack)",
    ),
    "sample-audio": ("synapscribe_local.cli:SAMPLE_AUDIO", "generate a spoken sample lecture or question"),
    "local": ("synapscribe_local.cli:LOCAL", "run the whole platform on loopback (nothing from AWS)"),
}


# `synapscribe local --port PORT`


def _local_arguments(parser: argparse.ArgumentParser) -> None:
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


def _local_run(args: argparse.Namespace) -> int:
    from synapscribe_local.stack import StackConfig, describe, run_stack
    from synapscribe_local.supervisor import StackCancelled, StackError

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


LOCAL = Command(_local_arguments, _local_run)


# `synapscribe sample-audio`: a spoken question (`--text`) or lecture (`--lecture-minutes`).

LECTURE_MINUTES = number(above=0, maximum=24 * 60)


def _sample_audio_arguments(parser: argparse.ArgumentParser) -> None:
    from synapscribe_local.audiogen import FORMATS

    parser.add_argument("--out", required=True, type=Path, help="file to write (.mp3 or .wav)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", type=non_empty, help="speak this text (a question)")
    what.add_argument("--lecture-minutes", type=LECTURE_MINUTES, help="a lecture of this many minutes")
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="default: from --out's suffix, else mp3"
    )
    parser.add_argument("--voice", default="en", help="espeak-ng voice (default en)")


def output_format(out: Path, asked: str | None) -> str:
    """The format to write: --format, else --out's suffix, else mp3. A suffix that is not the
    format written (`--out x.ogg` would get MP3 bytes) is refused, naming both."""
    from synapscribe_local.audiogen import FORMATS

    suffix = out.suffix.lower().lstrip(".")
    fmt = asked or (suffix if suffix in FORMATS else "mp3")
    if suffix and suffix != fmt:
        writes = f"--format {asked}" if asked else f"sample-audio writes {' or '.join(FORMATS)}"
        raise ValueError(
            f"argument --out: {out.name!r} ends in .{suffix} but {writes}: name it {out.stem}.{fmt}"
            + ("" if asked else f" or give --format ({', '.join(FORMATS)}) with a matching suffix")
        )
    return fmt


def _sample_audio_run(args: argparse.Namespace) -> int:
    from synapscribe_local.audiogen import AudioGenError, make_lecture, speak

    out: Path = args.out
    try:
        fmt = output_format(out, args.format)
    except ValueError as exc:
        print(f"synapscribe sample-audio: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        if args.text is not None:
            result = speak(args.text, out, fmt, voice=args.voice)
        else:
            result = make_lecture(out, args.lecture_minutes, fmt, voice=args.voice)
    except AudioGenError as exc:
        print(f"synapscribe sample-audio: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    print(
        f"{out}: {fmt}, {result.duration_seconds:.3f} s of speech, {out.stat().st_size} bytes, "
        f"{len(result.text.split())} words, generated in {elapsed:.2f} s"
    )
    return 0


SAMPLE_AUDIO = Command(_sample_audio_arguments, _sample_audio_run)
