"""Word accuracy of transcripts (WER-based) and whether an answer names what the lecture says.

The benchmark knows what every generated question says, so a transcript's word error rate is
measured against it: (substitutions + deletions + insertions) / reference words, by the word-level
edit distance after normalising case and punctuation. Word accuracy is 1 - WER, floored at 0
(WER exceeds 1 when a transcript adds more words than the question has).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation ("Plant's," -> "plant's"); what WER compares."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordErrors:
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words

    @property
    def accuracy(self) -> float:
        return max(0.0, 1.0 - self.wer)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """The fewest substitutions, deletions and insertions that turn `reference` into `hypothesis`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        raise ValueError("the reference has no words: a word error rate needs at least one")
    # One row of the edit-distance table at a time; each cell (cost, subs, dels, ins).
    previous = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, start=1):
        current = [(i, 0, i, 0)]
        for j, h in enumerate(hyp, start=1):
            diag = previous[j - 1]
            if r == h:
                best = diag
            else:
                up, left = previous[j], current[j - 1]
                best = min(
                    (diag[0] + 1, diag[1] + 1, diag[2], diag[3]),
                    (up[0] + 1, up[1], up[2] + 1, up[3]),
                    (left[0] + 1, left[1], left[2], left[3] + 1),
                )
            current.append(best)
        previous = current
    _, subs, dels, ins = previous[-1]
    return WordErrors(subs, dels, ins, len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    return word_errors(reference, hypothesis).wer


def pooled_wer(pairs: Sequence[tuple[str, str]]) -> float:
    """WER over several transcripts: all their errors over all their reference words."""
    counted = [word_errors(ref, hyp) for ref, hyp in pairs]
    words = sum(c.reference_words for c in counted)
    if not words:
        raise ValueError("no reference words")
    return sum(c.errors for c in counted) / words


def names_all(answer: str, stems: Sequence[str]) -> bool:
    """Whether `answer` names each expected term (matched by stem: "chloroplast" in "chloroplasts")."""
    words = " ".join(normalize_words(answer))
    return all(stem.lower() in words for stem in stems)
