"""`synapscribe demo`: start the local stack, run the smoke test against it with a generated
sample lecture, print the conversation and its timings, stop the stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from synapscribe.cli_types import number, port
from synapscribe_local.browser import BrowserError, find_chromium
from synapscribe_local.page_tour import SCREENSHOT, phone_screenshot_path, run_tour
from synapscribe_local.process import LocalStackProcess
from synapscribe_local.supervisor import StackError, check_port_free

from synapscribe_ops.smoke.checks import Budget
from synapscribe_ops.smoke.cli import make_inputs
from synapscribe_ops.smoke.report import format_report
from synapscribe_ops.smoke.runner import local_connector, run_smoke

LECTURE_MINUTES = number(above=0, maximum=60)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, help="WebSocket port for the local stack (default: a free one)")
    parser.add_argument(
        "--lecture-minutes",
        type=LECTURE_MINUTES,
        default=1.0,
        help="length of the generated sample lecture (default 1)",
    )
    parser.add_argument("--json", dest="json_report", type=Path, help="also write the smoke report as JSON")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=SCREENSHOT,
        help=f"where the student page's conversation is captured, when chromium is installed (default {SCREENSHOT})",
    )
    parser.add_argument("--no-page", action="store_true", help="leave out the student page in Chromium")


def _page_screenshot(stack: LocalStackProcess, screenshot: Path) -> bool:
    """The student page in headless Chromium (upload, voice, text, follow-up) and its screenshot."""
    if find_chromium() is None:
        print(
            "demo: page screenshot skipped: chromium is not installed (apt-get install chromium)", flush=True
        )
        return True
    print(f"demo: driving the student page in headless Chromium ({stack.page_url}) …", flush=True)
    with tempfile.TemporaryDirectory(prefix="synapscribe-page-") as tmp:
        try:
            result = asyncio.run(run_tour(stack.page_url, stack.info, Path(tmp), screenshot, full=False))
        except BrowserError as exc:
            print(f"demo: the student page failed: {exc}", flush=True)
            return False
    print(
        f"demo: the page answered {len(result.turns)} questions in {result.seconds.get('asked', 0):.1f} s; "
        f"screenshots {screenshot.resolve()} (desktop) and {phone_screenshot_path(screenshot).resolve()} (phone)",
        flush=True,
    )
    return True


def run(args: argparse.Namespace) -> int:
    if args.port is not None:
        try:
            check_port_free(args.port)
        except StackError as exc:
            print(f"synapscribe demo: --port: {exc}", file=sys.stderr)
            return 2
    stack = LocalStackProcess(args.port)
    print(f"demo: starting the local stack on 127.0.0.1:{stack.port} …", flush=True)
    started = time.monotonic()
    try:
        stack.start()
    except StackError as exc:
        print(f"synapscribe demo: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"demo: stack ready at {stack.url} in {time.monotonic() - started:.1f} s", flush=True)
        print(f"demo: services {json.dumps(stack.info.get('services', {}))}", flush=True)
        print(f"demo: student page {stack.page_url} (open it while the demo runs)", flush=True)
        with tempfile.TemporaryDirectory(prefix="synapscribe-demo-") as tmp:
            # The stack reports which model server it started: the stand-in's label is then required.
            standin = "standin" in stack.info.get("pids", {})
            print(
                f"demo: model {'stand-in' if standin else stack.info.get('services', {}).get('model')}",
                flush=True,
            )
            inputs = make_inputs(
                Path(tmp), Budget(), lecture_minutes=args.lecture_minutes, expect_standin=standin
            )
            print(
                f"demo: sample lecture {inputs.lecture} ({inputs.lecture.stat().st_size} bytes)", flush=True
            )
            report = asyncio.run(
                run_smoke(stack.url, "local", local_connector(stack.url, "demo-student"), inputs)
            )
        print(format_report(report))
        if args.json_report:
            args.json_report.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        page_ok = args.no_page or _page_screenshot(stack, args.screenshot)
        return 0 if report.ok and page_ok else 1
    finally:
        code = stack.stop()
        print(f"demo: local stack stopped (exit status {code})", flush=True)
