"""The canned question as the verify step asks it on a host (synapscribe.ami.probe), here against
the model stand-in (vLLM's OpenAI-compatible API on loopback): AgentCore's prompts reach the
model, the spoken question comes back transcribed and the answer quotes the lecture."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from synapscribe.ami import probe
from synapscribe.ami.verify import Canned, answer_problems, probe_script
from synapscribe.platform import load_platform
from synapscribe.standin.answers import PREFIX

CANNED_DIR = Path(__file__).resolve().parents[3] / "tests" / "host" / "canned"


def test_the_canned_question_is_answered_through_the_model_api(standin_server: str, tmp_path: Path) -> None:
    canned = Canned.load(CANNED_DIR)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = probe.main(
            [
                "--lecture", str(CANNED_DIR / "lecture.txt"),
                "--question", str(CANNED_DIR / "question.mp3"),
                "--seconds", str(canned.seconds),
                "--vllm-url", standin_server,
            ]
        )  # fmt: skip
    assert code == 0
    reply = json.loads(out.getvalue())
    # The stand-in marks everything it says; the words after the mark are what it heard and chose.
    transcript = reply["transcript"].removeprefix(PREFIX)
    assert transcript == canned.question_text
    assert answer_problems(canned, transcript, reply["answer"]) == []


def test_the_probe_script_carries_the_canned_files_intact() -> None:
    canned = Canned.load(CANNED_DIR)
    script = probe_script(load_platform(), canned)
    assert canned.lecture.rstrip("\n") in script
    assert f"{load_platform().host.venvs.runtime}/bin/python -m synapscribe.ami.probe" in script
    assert len(script) < 60_000, "SendCommand's parameters stay well inside the document's limit"
