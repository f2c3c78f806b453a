"""The smoke test's stand-in label and follow-up checks, against hand-made answers and against what
the real stand-in answers with and without the conversation's history."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synapscribe.audiogen import DEFAULT_LECTURE
from synapscribe.smoke.checks import (
    PICK_TERMS,
    STANDIN_LABEL,
    follow_up_problems,
    named_terms,
    standin_label_problems,
)
from synapscribe.smoke.client import QueryResult, check_frame
from synapscribe.smoke.runner import FOLLOW_UP, TEXT_QUESTION
from synapscribe.standin.answers import respond
from synapscribe.standin.chat_request import parse_chat_request
from synapscribe.standin.config import StandinConfig

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


def test_the_questions_fit_the_check() -> None:
    assert named_terms(TEXT_QUESTION) == set(PICK_TERMS), "the text question offers every term"
    assert named_terms(FOLLOW_UP) == set(), "the follow-up must not give the answer away"
    assert named_terms("Mitochondria and CHLOROPLASTS") == {"mitochondrion", "chloroplast"}


def test_a_real_model_follow_up_naming_the_earlier_term_passes() -> None:
    earlier = "The lecture mentions the chloroplast, where photosynthesis takes place."
    assert follow_up_problems(TEXT_QUESTION, earlier, "I just named the chloroplast.", standin=False) == []


@pytest.mark.parametrize(
    ("earlier", "follow_up", "needle"),
    [
        # The model forgot: it cannot know which term it named.
        ("Chloroplast.", "I have not named anything yet in this conversation.", "does not contain"),
        # It named another term than the one in its earlier answer.
        ("Chloroplast.", "I named the ribosome.", "does not contain"),
        # Nothing to follow up on: the earlier answer named none of the terms.
        ("The lecture is about light.", "I named light.", "named none"),
    ],
)
def test_a_follow_up_without_the_earlier_answer_fails(earlier: str, follow_up: str, needle: str) -> None:
    problems = follow_up_problems(TEXT_QUESTION, earlier, follow_up, standin=False)
    assert any(needle in p for p in problems), problems


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
    earlier = standin(config, [*lecture_messages(), {"role": "user", "content": TEXT_QUESTION}])
    assert earlier.startswith(STANDIN_LABEL)
    with_history = standin(
        config,
        [
            *lecture_messages(),
            {"role": "user", "content": TEXT_QUESTION},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": FOLLOW_UP},
        ],
    )
    assert follow_up_problems(TEXT_QUESTION, earlier, with_history, standin=True) == []

    without_history = standin(config, [*lecture_messages(), {"role": "user", "content": FOLLOW_UP}])
    problems = follow_up_problems(TEXT_QUESTION, earlier, without_history, standin=True)
    assert any("history did not reach the model" in p for p in problems), problems


def test_a_standin_history_line_about_another_question_fails() -> None:
    earlier = f"{STANDIN_LABEL} You asked: {TEXT_QUESTION}"
    follow_up = (
        f"{STANDIN_LABEL} You asked: {FOLLOW_UP} Earlier in this conversation you asked: "
        "Where does photosynthesis take place? The chloroplast, mitochondrion and ribosome are named here."
    )
    problems = follow_up_problems(TEXT_QUESTION, earlier, follow_up, standin=True)
    assert any("does not quote the earlier question" in p for p in problems), problems
