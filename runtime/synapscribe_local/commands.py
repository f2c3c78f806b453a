"""The local stack's and the test doubles' subcommands of `synapscribe` (registered in
runtime/pyproject.toml's `synapscribe.commands` entry points): name -> (module, one-line help)."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "standin": (
        "synapscribe_local.standin.cli",
        "run the model server stand-in (vLLM's OpenAI-compatible API, for tests and the local stack)",
    ),
    "sample-audio": ("synapscribe_local.audiogen_cli", "generate a spoken sample lecture or question"),
    "local": ("synapscribe_local.cli", "run the whole platform on loopback (nothing from AWS)"),
}
