"""PNG plots of a benchmark run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import statistics
from pathlib import Path

from synapscribe_ops.bench.report import BenchResults, Row, Table, percentile


def _points(table: Table) -> list[tuple[float, Row]]:
    return sorted(((r.x, r) for r in table.rows if r.x is not None and r.samples), key=lambda p: p[0])


def _plot_latency(table: Table, path: Path, xlabel: str, title: str, log_x: bool) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _points(table)
    if not points:
        return False
    xs = [x for x, _ in points]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    try:
        ax.plot(xs, [statistics.median(r.samples) for _, r in points], marker="o", label="median")
        ax.plot(xs, [percentile(r.samples, 95) for _, r in points], marker="^", linestyle="--", label="p95")
        ax.plot(xs, [min(r.samples) for _, r in points], marker="v", linestyle=":", label="min")
        targets = {r.target for _, r in points if r.target is not None}
        for target in sorted(targets):
            ax.axhline(target, color="grey", linewidth=0.8, linestyle="-.", label=f"target {target:g} s")
        if log_x and len(xs) > 1:
            ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("latency (s)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return True


def write_plots(results: BenchResults, out_dir: Path) -> list[str]:
    """Latency against audio length and against concurrency; returns the files written."""
    suffix = " (model stand-in)" if results.standin else ""
    written: list[str] = []
    for key, name, xlabel, title, log_x in (
        ("transcription", "latency-vs-audio-length.png", "audio length (s)", "Transcription latency", True),
        ("throughput", "latency-vs-concurrency.png", "concurrent sessions", "Question latency", True),
    ):
        try:
            table = results.table(key)
        except KeyError:
            continue
        if _plot_latency(table, out_dir / name, xlabel, title + suffix, log_x):
            written.append(name)
    return written
