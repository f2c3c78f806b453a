"""The smoke report: each step's outcome, the conversation with timings, what was skipped, and
how a person reads it (what failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synapscribe_ops.smoke.checks import Budget
from synapscribe_ops.smoke.inputs import MEANINGFUL, MEANINGLESS


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str = ""


@dataclass
class Turn:
    kind: str  # text | voice | follow-up
    question: str
    request_id: str
    heard: str | None
    answer: str | None
    audio: int
    error: str | None
    client_timings: dict[str, float | None]
    server_timings: dict[str, Any] | None
    tts_engine: str | None


@dataclass
class SmokeReport:
    url: str
    mode: str
    budget: Budget
    #: True when the stack runs the model stand-in: its label is then required everywhere.
    expect_standin: bool = False
    #: MEANINGFUL, or MEANINGLESS when the word checks were skipped (listed in `skipped`).
    model_words: str = MEANINGFUL
    #: The checks not made, each with why (word checks on a model whose words mean nothing).
    skipped: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    conversation: list[Turn] = field(default_factory=list)
    lecture: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return bool(self.steps) and not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "mode": self.mode,
            "expectStandin": self.expect_standin,
            "modelWords": self.model_words,
            "skippedChecks": list(self.skipped),
            "budget": self.budget.as_dict(),
            "lecture": self.lecture,
            "steps": [vars(s) for s in self.steps],
            "failures": [f"{s.name}: {s.detail}" for s in self.failures],
            "conversation": [vars(t) for t in self.conversation],
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def format_conversation(report: SmokeReport) -> str:
    lines: list[str] = []
    for turn in report.conversation:
        lines.append(f"  [{turn.kind}] Q: {turn.question}")
        if turn.heard is not None:
            lines.append(f"      heard as: {turn.heard}")
        if turn.answer is not None:
            lines.append(f"      A: {turn.answer}")
            t = turn.client_timings
            lines.append(
                f"      {turn.audio} audio clip(s) via {turn.tts_engine or '-'}; first token {_ms(t.get('firstDeltaMs'))}, "
                f"first audio {_ms(t.get('firstAudioMs'))}, answer {_ms(t.get('totalMs'))} (client-side)"
            )
            if turn.server_timings:
                parts = ", ".join(f"{k} {v:.0f}" for k, v in turn.server_timings.items() if v is not None)
                lines.append(f"      server timings (ms): {parts}")
        if turn.error:
            lines.append(f"      ERROR: {turn.error}")
    return "\n".join(lines)


def format_report(report: SmokeReport, verbose: bool = True) -> str:
    model = "model stand-in: its label is required" if report.expect_standin else "any model"
    if report.model_words == MEANINGLESS:
        model = "a model whose words mean nothing: word checks skipped"
    lines = [f"smoke test against {report.url} ({report.mode}, {model})"]
    if verbose:
        for step in report.steps:
            mark = "ok  " if step.ok else "FAIL"
            detail = step.detail.splitlines()[0] if step.detail else ""
            lines.append(f"  {mark} {step.name} ({step.ms:.0f} ms){': ' + detail if detail else ''}")
        if report.lecture:
            lec = report.lecture
            lines.append(
                f"lecture {lec.get('lectureId')}: {lec.get('bytes')} bytes, upload {lec.get('uploadMs')} ms, "
                f"ready after {lec.get('readyS')} s, {lec.get('durationSeconds')} s long, {lec.get('contextMode')} mode"
            )
        if report.conversation:
            lines.append("conversation:")
            lines.append(format_conversation(report))
    if report.skipped:
        lines.append(f"SKIPPED: {len(report.skipped)} word check(s), not counted as passed:")
        lines.extend(f"  - {what}" for what in report.skipped)
    passed = sum(s.ok for s in report.steps)
    if report.ok:
        lines.append(f"PASSED: {passed} of {len(report.steps)} checks")
    else:
        lines.append(f"FAILED: {len(report.failures)} of {len(report.steps)} checks")
        lines.extend(f"  - {s.name}: {s.detail}" for s in report.failures)
    return "\n".join(lines)
