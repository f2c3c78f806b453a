"""`synapscribe sample-audio`: generate a spoken question (`--text`) or lecture (`--lecture-minutes`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from synapscribe.cli_types import non_empty, number

from synapscribe_local.audiogen import FORMATS, AudioGenError, make_lecture, speak

LECTURE_MINUTES = number(above=0, maximum=24 * 60)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    suffix = out.suffix.lower().lstrip(".")
    fmt = asked or (suffix if suffix in FORMATS else "mp3")
    if suffix and suffix != fmt:
        writes = f"--format {asked}" if asked else f"sample-audio writes {' or '.join(FORMATS)}"
        raise ValueError(
            f"argument --out: {out.name!r} ends in .{suffix} but {writes}: name it {out.stem}.{fmt}"
            + ("" if asked else f" or give --format ({', '.join(FORMATS)}) with a matching suffix")
        )
    return fmt


def run(args: argparse.Namespace) -> int:
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
