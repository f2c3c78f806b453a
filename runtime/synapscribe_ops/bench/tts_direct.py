"""The full bench's direct TTS measurement: the TTS service itself (when the operator can reach it)
speaking generated sentences of the configured lengths."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from synapscribe_ops.bench.full_stack import FullConfig
from synapscribe_ops.bench.report import TARGETS, BenchResults, Row

_WORDS = [
    "light",
    "energy",
    "chlorophyll",
    "leaves",
    "carbon",
    "dioxide",
    "water",
    "sugar",
    "oxygen",
    "plants",
    "cells",
    "stroma",
    "membrane",
    "enzyme",
    "cycle",
    "glucose",
    "energy",
    "photons",
    "green",
    "pigment",
    "absorbs",
    "blue",
    "red",
    "reactions",
    "produce",
    "release",
]


def benchmark_sentence(words: int, salt: str) -> str:
    chosen = [_WORDS[(i * 7 + len(salt)) % len(_WORDS)] for i in range(words - 1)]
    return " ".join(["Benchmark", *chosen[: words - 2], salt]) + "."


async def measure_tts_direct(
    config: FullConfig, results: BenchResults, nonce: str, tick: Callable[[str], None]
) -> None:
    """The `tts` table's rows of the TTS service itself, or a row saying why it was not reached."""
    table = results.table("tts")
    if not config.tts_url:
        table.rows.append(
            Row(
                "direct TTS service",
                note="not reachable: the TTS service listens on the instance's loopback; "
                "pass --tts-url (local stack) or use the per-sentence row below",
            )
        )
        return
    url = config.tts_url.rstrip("/") + "/v1/audio/speech"
    async with httpx.AsyncClient(timeout=config.request_timeout) as http:
        for words in config.tts_words:
            row = table.row(f"{words} words (TTS service)", target=TARGETS["tts_sentence"], x=words)
            engines: set[str] = set()
            for i in range(config.repeats):
                text = benchmark_sentence(words, f"{nonce}{i}")
                started = time.monotonic()
                try:
                    response = await http.post(
                        url, json={"input": text, "voice": "en", "response_format": "mp3"}
                    )
                    response.raise_for_status()
                    row.samples.append(time.monotonic() - started)
                    engines.add(response.headers.get("X-TTS-Engine", "?"))
                except httpx.HTTPError as exc:
                    row.note = f"failed: {exc}"[:200]
                tick(f"tts {words} words")
            row.extra["engine"] = ", ".join(sorted(engines)) or "-"
    table.rows[-1].note = table.rows[-1].note or "target is per sentence; longer texts are several"
