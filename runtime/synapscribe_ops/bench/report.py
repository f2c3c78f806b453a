"""Benchmark results: samples per row, min/median/p95, targets, and the Markdown report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: The original validation report's targets (seconds).
TARGETS: dict[str, float] = {
    "transcription": 1.8,
    "first_token": 0.4,
    "tts_sentence": 0.3,
    "end_to_end": 8.2,
}


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 100]): a value that was actually measured."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Row:
    """One line of a table: the samples (seconds) of one case, and what to compare them with."""

    label: str
    samples: list[float] = field(default_factory=list)
    target: float | None = None
    #: The row's position on a plot's x axis (audio seconds, concurrency), when it has one.
    x: float | None = None
    #: Further columns (real-time factor, mode, throughput …), already formatted.
    extra: dict[str, str] = field(default_factory=dict)
    note: str = ""
    #: The target is a floor (word accuracy), not a ceiling (latency).
    higher_is_better: bool = False

    def stats(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        return {
            "n": len(self.samples),
            "min": min(self.samples),
            "median": statistics.median(self.samples),
            "p95": percentile(self.samples, 95),
        }

    def meets_target(self) -> bool | None:
        s = self.stats()
        if s is None or self.target is None:
            return None
        return s["median"] >= self.target if self.higher_is_better else s["median"] <= self.target


@dataclass
class Table:
    key: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    unit: str = "s"
    #: Its figures are about what the model's words say (accuracy): not meaningful for the
    #: stand-in or a model whose words mean nothing.
    about_words: bool = False

    def row(self, label: str, **kw: Any) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        r = Row(label, **kw)
        self.rows.append(r)
        return r


@dataclass
class BenchResults:
    url: str
    mode: str  # "local" or "deployed"
    repeats: int
    started: str
    standin: bool = False
    #: "meaningless" for a model whose words mean nothing (random weights, `--model-words`).
    model_words: str = "meaningful"
    platform: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)

    def table(self, key: str) -> Table:
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(key)

    def words_not_meaningful(self) -> str | None:
        """Why the accuracy figures say nothing about the model, or None when they are the figures."""
        if self.standin:
            return "the model stand-in hears the text embedded in generated audio and quotes the lecture"
        if self.model_words == "meaningless":
            return "the model's words mean nothing (random weights: `--model-words meaningless`)"
        return None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["wordsNotMeaningful"] = self.words_not_meaningful()
        for t, td in zip(self.tables, data["tables"], strict=True):
            for r, rd in zip(t.rows, td["rows"], strict=True):
                rd["stats"] = r.stats()
        return data


TARGET_WORD_ACCURACY = 95.0  # percent: the original validation report's transcription target


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:g} {unit}"


STANDIN_LABEL = (
    "**Model stand-in:** these figures were measured against the local stack with the model "
    "server stand-in, not Qwen2.5-Omni-3B on a GPU. They measure the platform's own overhead "
    "(WebSocket edge, AgentCore, TTS, S3, DynamoDB); the model's share is the stand-in's, not the "
    "model's. Do not compare them with the validation report's targets."
)


def render_markdown(results: BenchResults) -> str:
    lines = [
        "# SynapScribe benchmark: the validation report's tables",
        "",
        f"- stack: `{results.url}` ({results.mode})",
        f"- started: {results.started}; repeats per case: {results.repeats}",
    ]
    if results.platform:
        lines.append("- platform: " + ", ".join(f"{k} {v}" for k, v in results.platform.items()))
    lines.append(
        "- targets (original validation report): transcription "
        f"{TARGETS['transcription']} s, first token {TARGETS['first_token']} s, TTS "
        f"{TARGETS['tts_sentence']} s per sentence, end to end {TARGETS['end_to_end']} s; "
        f"transcript word accuracy over {TARGET_WORD_ACCURACY:g} %"
    )
    lines.append("")
    if results.standin:
        lines += [f"> {STANDIN_LABEL}", ""]
    for note in results.notes:
        lines.append(f"- {note}")
    if results.notes:
        lines.append("")
    not_meaningful = results.words_not_meaningful()
    for table in results.tables:
        title = table.title + (" (model stand-in)" if results.standin else "")
        lines += [f"## {title}", "", table.description, ""]
        if table.about_words and not_meaningful:
            lines += [
                f"> **Not meaningful:** {not_meaningful}; these figures only show the measurement runs.",
                "",
            ]
        header = ["case", "n", "min", "median", "p95", "target", *table.extra_columns, "note"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + " --- |" * len(header))
        for row in table.rows:
            s = row.stats()
            if s is None:
                cells = [row.label, "0", "-", "-", "-"]
            else:
                cells = [
                    row.label,
                    str(int(s["n"])),
                    _fmt(s["min"], table.unit),
                    _fmt(s["median"], table.unit),
                    _fmt(s["p95"], table.unit),
                ]
            if row.target is None:
                cells.append("-")
            else:
                # Against the stand-in a verdict would compare the platform's overhead with the
                # model's targets: show the target only.
                quiet = results.standin or (table.about_words and not_meaningful is not None)
                verdict = "" if quiet else {True: "met", False: "missed", None: ""}[row.meets_target()]
                floor = "≥ " if row.higher_is_better else ""
                cells.append(f"{floor}{_fmt(row.target, table.unit)} {verdict}".strip())
            cells += [row.extra.get(c, "-") for c in table.extra_columns]
            cells.append(row.note or "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if results.plots:
        lines += ["## Plots", ""]
        lines += [f"![{p}]({p})" for p in results.plots]
        lines.append("")
    return "\n".join(lines)
