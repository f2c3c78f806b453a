"""The smoke test's stand-in label and follow-up checks, against hand-made answers and against what
the real stand-in answers with and without the conversation's history: the follow-up asks for a
codeword only the earlier question gave, so an answer without the history cannot pass."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from synapscribe_local.audiogen import DEFAULT_LECTURE
from synapscribe_local.standin.answers import respond
from synapscribe_local.standin.chat_request import parse_chat_request
from synapscribe_local.standin.config import StandinConfig
from synapscribe_ops.smoke.checks import (
    PICK_TERMS,
    STANDIN_LABEL,
    codeword_question,
    follow_up_problems,
    named_terms,
    new_codeword,
    standin_label_problems,
)
from synapscribe_ops.smoke.client import QueryResult, check_frame
from synapscribe_ops.smoke.inputs import FOLLOW_UP, TEXT_QUESTION

RID = "r1"


def stream(*messages: dict[str, Any]) -> QueryResult:
    result = QueryResult(request_id=RID, sent_at=0.0)
    for i, m in enumerate(messages):
        result.messages.append(check_frame(json.dumps({"requestId": RID, **m}), 0.1 * (i + 1)))
    return result


def voice_stream(heard: str, answer: str) -> QueryResult:
    return stream(
        {"type": "transcript", "text": heard},
        {"type": "answerDelta", "text": answer},
        {"type": "answer", "text": answer, "audio": [], "timings": {"totalMs": 5}},
    )


def test_labelled_transcript_and_answer_pass() -> None:
    result = voice_stream(f"{STANDIN_LABEL} Where?", f"{STANDIN_LABEL} In the chloroplasts.")
    assert standin_label_problems(result) == []


@pytest.mark.parametrize(
    ("heard", "answer", "needle"),
    [
        ("Where?", f"{STANDIN_LABEL} In the chloroplasts.", "transcript lacks"),
        (f"{STANDIN_LABEL} Where?", "In the chloroplasts.", "answer lacks"),
        (f"{STANDIN_LABEL} Where?", f"In the chloroplasts. {STANDIN_LABEL}", "answer lacks"),
    ],
)
def test_a_missing_label_fails(heard: str, answer: str, needle: str) -> None:
    problems = standin_label_problems(voice_stream(heard, answer))
    assert len(problems) == 1 and needle in problems[0], problems


CODEWORD = "zorevimu"
ASKED = codeword_question(TEXT_QUESTION, CODEWORD)


def test_the_questions_fit_the_check() -> None:
    assert named_terms(TEXT_QUESTION) == set(PICK_TERMS), "the text question offers every term"
    assert named_terms("Mitochondria and CHLOROPLASTS") == {"mitochondrion", "chloroplast"}
    assert ASKED.startswith(TEXT_QUESTION) and CODEWORD in ASKED
    assert "codeword" in FOLLOW_UP and CODEWORD not in FOLLOW_UP, (
        "the follow-up must not give the answer away"
    )
    lecture = " ".join(DEFAULT_LECTURE).lower()
    assert named_terms(lecture), "the lecture names a term: a term alone cannot show the history"


def test_codewords_are_new_made_up_words_the_lecture_does_not_hold() -> None:
    words = {new_codeword() for _ in range(200)}
    assert len(words) > 190, "a codeword must not be guessable"
    assert all(re.fullmatch(r"([bdfgklmnprstvz][aeiou]){4}", w) for w in words), words
    lecture = " ".join(DEFAULT_LECTURE).lower()
    assert not [w for w in words if w in lecture]
    assert new_codeword(random.Random(7)) == new_codeword(random.Random(7))


def test_a_real_model_follow_up_giving_the_codeword_passes() -> None:
    assert (
        follow_up_problems(ASKED, f"Your codeword is {CODEWORD.capitalize()}.", CODEWORD, standin=False) == []
    )


@pytest.mark.parametrize(
    "follow_up",
    [
        # The model forgot: it cannot know the codeword.
        "You have not told me a codeword in this conversation.",
        # It answers from the lecture: the term question's answer is no longer enough.
        "I named the chloroplast, where photosynthesis takes place.",
        # A wrong guess.
        "Your codeword is zorevima.",
    ],
)
def test_a_follow_up_without_the_earlier_turn_fails(follow_up: str) -> None:
    problems = follow_up_problems(ASKED, follow_up, CODEWORD, standin=False)
    assert len(problems) == 1 and "does not give the codeword 'zorevimu'" in problems[0], problems


def test_the_earlier_question_must_give_the_codeword() -> None:
    with pytest.raises(ValueError, match="must give the codeword"):
        follow_up_problems(TEXT_QUESTION, "zorevimu", CODEWORD, standin=False)


@pytest.fixture
def config() -> StandinConfig:
    return StandinConfig.from_platform()


def standin(config: StandinConfig, messages: list[dict[str, Any]]) -> str:
    request = parse_chat_request({"model": config.served_name, "messages": messages}, config)
    return respond(request, 170).text


def lecture_messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Answer the student's questions about the lecture."},
        {"role": "user", "content": " ".join(DEFAULT_LECTURE)},
    ]


def test_the_real_standin_passes_with_history_and_fails_without(config: StandinConfig) -> None:
    earlier = standin(config, [*lecture_messages(), {"role": "user", "content": ASKED}])
    assert earlier.startswith(STANDIN_LABEL)
    with_history = standin(
        config,
        [
            *lecture_messages(),
            {"role": "user", "content": ASKED},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": FOLLOW_UP},
        ],
    )
    for as_standin in (False, True):
        assert follow_up_problems(ASKED, with_history, CODEWORD, standin=as_standin) == []

    without_history = standin(config, [*lecture_messages(), {"role": "user", "content": FOLLOW_UP}])
    problems = follow_up_problems(ASKED, without_history, CODEWORD, standin=False)
    assert len(problems) == 1 and "does not give the codeword" in problems[0], problems
    problems = follow_up_problems(ASKED, without_history, CODEWORD, standin=True)
    assert any("history did not reach the model" in p for p in problems), problems


def test_a_standin_history_line_about_another_question_fails() -> None:
    follow_up = (
        f"{STANDIN_LABEL} You asked: {FOLLOW_UP} Earlier in this conversation you asked: "
        f"Where does photosynthesis take place? Your codeword is {CODEWORD}."
    )
    problems = follow_up_problems(ASKED, follow_up, CODEWORD, standin=True)
    assert len(problems) == 1 and "does not quote the earlier question" in problems[0], problems


def test_two_smoke_runs_ask_with_different_codewords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run's inputs, made as `synapscribe smoke` makes them, carry a new codeword into the
    question it sends: a fixed one would let a model (or a cache) that saw an earlier run pass."""
    from synapscribe_local import audiogen
    from synapscribe_ops.smoke.checks import Budget
    from synapscribe_ops.smoke.cli import make_inputs
    from synapscribe_ops.smoke.report import SmokeReport
    from synapscribe_ops.smoke.runner import Scenario

    question = tmp_path / "question.mp3"
    question.write_bytes(b"ID3")
    monkeypatch.setattr(audiogen, "speak", lambda text, path, *a, **k: SimpleNamespace(path=question))
    lecture = tmp_path / "lecture.mp3"
    lecture.write_bytes(b"ID3")
    asked = []
    for _ in range(2):
        inputs = make_inputs(tmp_path, Budget(), lecture=lecture)
        scenario = Scenario(
            lambda url: None, inputs, SmokeReport(url="ws://x", mode="local", budget=Budget())
        )  # type: ignore[arg-type,return-value]
        assert inputs.codeword in scenario.text_question
        asked.append(scenario.text_question)
    assert asked[0] != asked[1], asked
