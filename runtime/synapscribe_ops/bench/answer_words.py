"""What the full bench's questions say and what the lecture answers to them, and the accuracy
table: how each generated voice question was heard, and whether each answer named what the lecture
says."""

from __future__ import annotations

from synapscribe_ops.bench.accuracy import names_all, pooled_wer, word_errors
from synapscribe_ops.bench.report import TARGET_WORD_ACCURACY, Table
from synapscribe_ops.smoke.client import QueryResult

STANDIN_PREFIX = "[stand-in]"
VOICE_QUESTION = "Where does photosynthesis take place in the plant?"
TEXT_QUESTION = "What does the enzyme rubisco do in the Calvin cycle?"
FOLLOW_UP = "Could you say that again more simply, in one sentence?"
#: What the lecture (audiogen.DEFAULT_LECTURE) says to each question: the terms a right answer names.
LECTURE_SAYS: dict[str, tuple[str, ...]] = {
    VOICE_QUESTION: ("chloroplast",),  # "It takes place in the chloroplasts …"
    TEXT_QUESTION: ("carbon dioxide",),  # "… the enzyme rubisco fixes carbon dioxide from the air."
}


class AnswerWords:
    """The transcripts and answers the scenarios saw, for the accuracy table."""

    def __init__(self) -> None:
        #: (what the generated question says, its transcript) of every voice question answered
        self.heard: list[tuple[str, str]] = []
        #: (question, whether its answer named what the lecture says) of every answer checked
        self.named: list[tuple[str, bool]] = []

    def check(self, question: str, result: QueryResult, *, spoken: str | None = None) -> None:
        """Record the transcript of a generated question that says `spoken`, and whether the answer
        names what the lecture says to `question` (a key of LECTURE_SAYS)."""
        if spoken is not None and result.transcript is not None:
            self.heard.append((spoken, result.transcript.removeprefix(STANDIN_PREFIX)))
        if result.answer is not None:
            self.named.append((question, names_all(result.answer.text, LECTURE_SAYS[question])))

    def fill(self, table: Table) -> None:
        """The accuracy table from what the scenarios heard and answered."""
        heard = table.row(
            "transcript word accuracy, generated voice questions",
            target=TARGET_WORD_ACCURACY,
            higher_is_better=True,
        )
        heard.samples += [word_errors(spoken, transcript).accuracy * 100 for spoken, transcript in self.heard]
        heard.extra["WER (pooled)"] = f"{pooled_wer(self.heard):.1%}" if self.heard else "-"
        heard.extra["of"] = f"{len(self.heard)} transcript(s)"
        if not self.heard:
            heard.note = "no voice question was answered with a transcript"
        named = table.row("answers that name what the lecture says")
        named.samples += [100.0 if ok else 0.0 for _, ok in self.named]
        hits = sum(ok for _, ok in self.named)
        named.extra["WER (pooled)"] = "-"
        named.extra["of"] = f"{hits} of {len(self.named)} answer(s)"
        named.note = "; ".join(f"{q!r} must name {' and '.join(t)}" for q, t in LECTURE_SAYS.items())
