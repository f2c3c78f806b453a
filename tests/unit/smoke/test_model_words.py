"""`synapscribe smoke --model-words meaningless`: the word checks are skipped and the report (text and
JSON) says which; the other checks stay; the mode does not go with `--expect-standin`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe_ops.smoke.checks import Budget
from synapscribe_ops.smoke.inputs import MEANINGFUL, MEANINGLESS, WORD_CHECKS, SmokeInputs
from synapscribe_ops.smoke.report import SmokeReport, Step, format_report
from synapscribe_ops.smoke.runner import Scenario


def _inputs(tmp_path: Path, **kw: object) -> SmokeInputs:
    lecture = tmp_path / "l.mp3"
    lecture.write_bytes(b"ID3")
    return SmokeInputs(lecture, "audio/mpeg", b"", Budget(), **kw)  # type: ignore[arg-type]


def test_the_report_lists_each_skipped_word_check(tmp_path: Path) -> None:
    report = SmokeReport("ws://x", "local", Budget(), model_words=MEANINGLESS)
    scenario = Scenario(lambda label: None, _inputs(tmp_path, model_words=MEANINGLESS), report)  # type: ignore[arg-type,return-value]
    scenario.questions.skip_word_check("follow-up recalls the codeword")
    report.steps.append(Step("follow-up question (needs the earlier turn)", True, 5.0, "ok"))
    text = format_report(report)
    assert "a model whose words mean nothing: word checks skipped" in text.splitlines()[0]
    assert "SKIPPED: 1 word check(s), not counted as passed:" in text
    assert WORD_CHECKS["follow-up recalls the codeword"] in text
    assert "PASSED: 1 of 1 checks" in text
    data = report.as_dict()
    assert data["modelWords"] == MEANINGLESS
    assert data["skippedChecks"] == [
        f"follow-up recalls the codeword: {WORD_CHECKS['follow-up recalls the codeword']} (the model's words mean nothing)"
    ]


def test_a_meaningful_model_skips_nothing() -> None:
    report = SmokeReport("ws://x", "local", Budget())
    report.steps.append(Step("connect", True, 1.0))
    assert report.model_words == MEANINGFUL
    assert report.as_dict()["skippedChecks"] == []
    assert "SKIPPED" not in format_report(report)


def test_inputs_refuse_an_unknown_mode_and_the_standin_with_meaningless_words(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_words must be one of"):
        _inputs(tmp_path, model_words="random")
    with pytest.raises(ValueError, match="stand-in"):
        _inputs(tmp_path, model_words=MEANINGLESS, expect_standin=True)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model-words", "random"], "--model-words"),
        (["--model-words", "meaningless", "--expect-standin"], "do not go together"),
    ],
)
def test_bad_model_words_flags_exit_2(args: list[str], needle: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "smoke", "--url", "ws://127.0.0.1:1", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert needle in done.stderr


def test_an_answer_with_no_words_is_allowed_only_when_asked_and_nothing_else_is_excused() -> None:
    import json

    from synapscribe_ops.smoke.checks import said_nothing, stream_problems
    from synapscribe_ops.smoke.client import QueryResult, check_frame

    def result(*messages: dict[str, object]) -> QueryResult:
        r = QueryResult(request_id="r", sent_at=1.0)
        r.messages += [check_frame(json.dumps(m), 1.0 + i) for i, m in enumerate(messages)]
        return r

    empty = {"type": "answer", "requestId": "r", "text": " ", "audio": [], "timings": {"totalMs": 5}}
    silent = result(empty)
    assert said_nothing(silent)
    strict = stream_problems(silent, voice_input=False, voice_output=True)
    assert any("the answer is empty" in p for p in strict) and any("no audio" in p for p in strict)
    assert stream_problems(silent, voice_input=False, voice_output=True, allow_empty=True) == []
    # Still checked: a voice question's transcript, and audio that does not add up.
    assert "no transcript" in " ".join(
        stream_problems(silent, voice_input=True, voice_output=True, allow_empty=True)
    )
    stray = result({**empty, "audio": ["http://x/0.mp3"]})
    assert stream_problems(stray, voice_input=False, voice_output=True, allow_empty=True)
    spoken = result(
        {"type": "answerDelta", "requestId": "r", "text": "Hi."},
        {"type": "answer", "requestId": "r", "text": "Hi.", "audio": [], "timings": {"totalMs": 5}},
    )
    assert not said_nothing(spoken)
    assert stream_problems(spoken, voice_input=False, voice_output=True, allow_empty=True) == [
        "r: voice was requested but the answer has no audio"
    ]
