"""argparse value types shared by the CLIs: each error names the value it expected.

parser.add_argument("--port", type=port)
parser.add_argument("--repeats", type=positive_int)
parser.add_argument("--minutes", type=number(above=0, maximum=60))   # "must be more than 0 and at most 60"
parser.add_argument("--sizes", type=comma_list(positive_int))

argparse prefixes the message with the flag: "argument --port: must be between 1 and 65535, got '0'".

Every parser of the runtime is a `Parser`: abbreviated flags (`--student 40` for `--students`) are
refused and named, not silently expanded.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """The runtime's ArgumentParser: a long flag must be written in full (`allow_abbrev=False`), so
    `--prot 1` is an "unrecognized argument" naming `--prot`, never a guess. Subcommand parsers
    made with `add_subparsers().add_parser` are Parsers too: argparse builds them with the
    parent's class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self._arguments: list[str] = []

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._arguments = [str(a) for a in (sys.argv[1:] if args is None else args)]
        return super().parse_known_args(self._arguments, namespace)

    def error(self, message: str) -> NoReturn:
        # argparse reports a missing required flag before an unknown one, so `local --prot 1`
        # would only say "--port is required": name the flag the user actually mistyped first.
        if message.startswith("the following arguments are required"):
            words = (
                self._arguments[: self._arguments.index("--")] if "--" in self._arguments else self._arguments
            )
            unknown = [
                w
                for w in words
                if w.startswith("--") and w.split("=", 1)[0] not in self._option_string_actions
            ]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)} ({message})"
        super().error(message)


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _expected(low: float | None, low_open: bool, high: float | None, unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None:
        if low_open:
            return f"more than {_show(low)} and at most {_show(high)}{suffix}"
        return f"between {_show(low)} and {_show(high)}{suffix}"
    if low is not None:
        if low_open:
            return "positive" if low == 0 else f"more than {_show(low)}{suffix}"
        return "zero or more" if low == 0 else f"at least {_show(low)}{suffix}"
    if high is not None:
        return f"at most {_show(high)}{suffix}"
    return "a number"


def integer(
    *, minimum: int | None = None, maximum: int | None = None, unit: str = "", note: str = ""
) -> Callable[[str], int]:
    """A whole number in [minimum, maximum] (either bound optional)."""
    expected = _expected(minimum, False, maximum, unit) + (f" ({note})" if note else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


def number(
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    note: str = "",
) -> Callable[[str], float]:
    """A finite number >= minimum (or > above) and <= maximum (every bound optional)."""
    if minimum is not None and above is not None:
        raise ValueError("give minimum or above, not both")
    low = above if above is not None else minimum
    expected = _expected(low, above is not None, maximum, unit) + (f" ({note})" if note else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (
            (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


positive_int = integer(minimum=1)
non_negative_int = integer(minimum=0)
positive_float = number(above=0)
non_negative_float = number(minimum=0)


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number between 1 and 65535, got {text!r}")
    return value


def non_empty(text: str) -> str:
    """Any text but the empty (or blank) one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def comma_list(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    """A comma-separated list of at least one `kind` value ("1,2, 4")."""

    def parse(text: str) -> list[T]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        return [kind(t) for t in items]

    return parse


@dataclass(frozen=True)
class Command:
    """A subcommand kept beside others in its package's cli.py: how it reads its arguments and
    what it runs (the `synapscribe` command loads it by "package.cli:NAME")."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
