"""`synapscribe demo` (what `make demo` runs) end to end as a subprocess: the stack starts, the smoke
test converses with it, the conversation and timings are printed, the stack stops."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe_ops.smoke.inputs import FOLLOW_UP, TEXT_QUESTION, VOICE_QUESTION

# No wall-clock assertion: the demo prints its own timings (a figure, not a test), and CI shares
# 2 cores with the other worker. The limit below only stops a hung run.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_demo_runs_the_conversation_and_stops_the_stack(tmp_path: Path) -> None:
    report_path = tmp_path / "demo.json"
    screenshot = tmp_path / "page.png"
    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_BASE_URL", "VLLM_MODEL")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "synapscribe.cli",
            "demo",
            "--json",
            str(report_path),
            "--screenshot",
            str(screenshot),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr

    assert re.search(r"demo: stack ready at ws://127\.0\.0\.1:\d+ in [\d.]+ s", out), out
    assert "demo: model stand-in" in out
    assert "(local, model stand-in: its label is required)" in out
    # The conversation: each question, what the voice question was heard as, the answers, timings.
    for question in (VOICE_QUESTION, TEXT_QUESTION, FOLLOW_UP):
        assert f"Q: {question}" in out, out
    heard = re.search(r"heard as: (.*)", out)
    assert heard and heard.group(1).startswith("[stand-in]") and "photosynthesis" in heard.group(1).lower()
    answers = re.findall(r"^ +A: (.*)$", out, re.M)
    assert len(answers) == 3 and all(a.startswith("[stand-in]") for a in answers), answers
    codeword = re.search(r"my codeword is ([a-z]+)", out)
    assert codeword and codeword.group(1) in answers[2], (
        "the follow-up answer gives the earlier turn's codeword"
    )
    timings = re.findall(r"first token \d+ ms, first audio (?:\d+ ms|-), answer \d+ ms", out)
    assert len(timings) == 3, out
    assert len(re.findall(r"server timings \(ms\): .*totalMs \d+", out)) == 3, out
    assert re.search(r"^PASSED: (\d+) of \1 checks$", out, re.M), out
    # The stack stopped, and cleanly, after the summary.
    stopped = re.search(r"demo: local stack stopped \(exit status (-?\d+)\)", out)
    assert stopped and stopped.group(1) == "0", out
    assert out.index("PASSED") < stopped.start()
    # The student page: its URL while the stack runs, and (Chromium installed) its screenshot.
    assert re.search(r"^demo: student page http://127\.0\.0\.1:\d+/ ", out, re.M), out
    phone = screenshot.with_name("page-phone.png")
    assert "demo: the page answered 5 questions in " in out, out
    assert f"screenshots {screenshot} (desktop) and {phone} (phone)" in out, out
    assert screenshot.read_bytes().startswith(b"\x89PNG") and phone.read_bytes().startswith(b"\x89PNG")

    report = json.loads(report_path.read_text())
    assert report["ok"] is True and report["expectStandin"] is True
    assert [t["kind"] for t in report["conversation"]] == ["voice", "text", "follow-up"]
    for turn in report["conversation"]:
        t = turn["client_timings"]
        assert 0 < t["firstDeltaMs"] <= t["totalMs"]
