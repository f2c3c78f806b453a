"""The word error rate on known cases, and the answer-names-the-term check."""

from __future__ import annotations

import pytest
from synapscribe_ops.bench.accuracy import (
    names_all,
    normalize_words,
    pooled_wer,
    word_error_rate,
    word_errors,
)

REF = "Where does photosynthesis take place in the plant?"


def test_identical_text_has_no_errors_whatever_the_case_and_punctuation() -> None:
    assert word_error_rate(REF, REF) == 0.0
    assert word_error_rate(REF, "where does PHOTOSYNTHESIS take place, in the plant") == 0.0
    assert word_errors(REF, REF).accuracy == 1.0


def test_one_substitution_in_eight_words() -> None:
    e = word_errors(REF, "Where does photosynthesis take place in the planet?")
    assert (e.substitutions, e.deletions, e.insertions, e.reference_words) == (1, 0, 0, 8)
    assert e.wer == pytest.approx(1 / 8)
    assert e.accuracy == pytest.approx(7 / 8)


def test_deletions_and_insertions_are_counted_as_such() -> None:
    e = word_errors(REF, "Where photosynthesis take place in the plant")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 1, 0)
    e = word_errors(REF, "Um where does photosynthesis take place in the green plant")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 0, 2)
    assert e.wer == pytest.approx(2 / 8)


def test_the_classic_example() -> None:
    # "kitten sitting" style at word level: 2 substitutions and 1 insertion over 3 words.
    e = word_errors("the cat sat", "a cat sit down")
    assert (e.substitutions, e.deletions, e.insertions) == (2, 0, 1)
    assert e.wer == pytest.approx(1.0)
    assert e.accuracy == 0.0


def test_an_empty_transcript_is_all_deletions_and_more_words_than_the_reference_exceed_one() -> None:
    assert word_error_rate(REF, "") == 1.0
    assert word_error_rate("one two", "a b c d e f") == pytest.approx(3.0)  # 2 subs + 4 ins over 2
    assert word_errors("one two", "a b c d e f").accuracy == 0.0


def test_an_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(" ?! ", "anything")


def test_pooled_wer_weighs_by_reference_words() -> None:
    pairs = [("a b c d", "a b c d"), ("e f", "e x")]  # 0 of 4, 1 of 2
    assert pooled_wer(pairs) == pytest.approx(1 / 6)


def test_normalized_words_keep_apostrophes_and_digits() -> None:
    assert normalize_words("Today's lecture: 6 CO2, isn't it?") == [
        "today's",
        "lecture",
        "6",
        "co2",
        "isn't",
        "it",
    ]


def test_names_all_matches_every_stem() -> None:
    assert names_all("It happens in the Chloroplasts.", ["chloroplast"])
    assert names_all("Rubisco fixes carbon dioxide.", ["carbon dioxide"])
    assert not names_all("It fixes carbon.", ["carbon dioxide"])
    assert not names_all("In the leaves.", ["chloroplast"])


def _bench_with(heard: list[tuple[str, str]], named: list[tuple[str, bool]], **flags: object):
    from pathlib import Path

    from synapscribe_ops.bench.full_scenarios import Bench, new_results
    from synapscribe_ops.bench.full_stack import FullConfig

    results = new_results("ws://127.0.0.1:1", "local", 1, "now")
    for key, value in flags.items():
        setattr(results, key, value)
    bench = Bench(None, FullConfig(workdir=Path(".")), results, lambda _: None)  # type: ignore[arg-type]
    bench.words.heard, bench.words.named = heard, named
    bench.accuracy()
    return results


def _accuracy_rows(md: str) -> list[str]:
    section = md.split("## Accuracy: transcripts and answers", 1)[1].split("\n## ", 1)[0]
    return [
        line
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith(("| case", "| ---"))
    ]


def test_the_report_gives_accuracy_with_a_verdict_against_95_percent_on_a_real_model() -> None:
    from synapscribe_ops.bench.answer_words import TEXT_QUESTION, VOICE_QUESTION
    from synapscribe_ops.bench.report import render_markdown

    heard = [
        (VOICE_QUESTION, VOICE_QUESTION),
        (VOICE_QUESTION, "Where does photosynthesis take place in the planet"),
    ]
    results = _bench_with(heard, [(VOICE_QUESTION, True), (TEXT_QUESTION, False)])
    md = render_markdown(results)
    rows = _accuracy_rows(md)
    # Medians: (100 + 87.5) / 2 = 93.75 % < 95 % -> missed; pooled WER 1 of 16 words.
    assert rows[0].startswith(
        "| transcript word accuracy, generated voice questions | 2 | 87.5 % | 93.8 % | 100.0 % | ≥ 95.0 % missed | 6.2% | 2 transcript(s) |"
    ), rows[0]
    assert rows[1].startswith(
        "| answers that name what the lecture says | 2 | 0.0 % | 50.0 % | 100.0 % | - | - | 1 of 2 answer(s) |"
    )
    assert "Not meaningful" not in md
    assert results.as_dict()["wordsNotMeaningful"] is None


@pytest.mark.parametrize(
    ("flags", "why"),
    [({"standin": True}, "stand-in"), ({"model_words": "meaningless"}, "the model's words mean nothing")],
)
def test_accuracy_is_labelled_not_meaningful_for_the_standin_and_a_meaningless_model(
    flags: dict[str, object], why: str
) -> None:
    from synapscribe_ops.bench.answer_words import VOICE_QUESTION
    from synapscribe_ops.bench.report import render_markdown

    results = _bench_with([(VOICE_QUESTION, VOICE_QUESTION)], [(VOICE_QUESTION, True)], **flags)
    md = render_markdown(results)
    section = md.split("## Accuracy: transcripts and answers", 1)[1].split("\n## ", 1)[0]
    assert "> **Not meaningful:**" in section and why in section
    assert "≥ 95.0 % |" in _accuracy_rows(md)[0] and " met |" not in section
    assert why in str(results.as_dict()["wordsNotMeaningful"])
