"""The canned question as the verify step asks it on a host (synapscribe.host_probe), here against
the model stand-in (vLLM's OpenAI-compatible API on loopback): AgentCore's prompts reach the
model, the spoken question comes back transcribed and the answer quotes the lecture."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest
from synapscribe import host_probe as probe
from synapscribe.platform import load_platform
from synapscribe_local.standin.answers import PREFIX
from synapscribe_ops.ami import verify
from synapscribe_ops.ami.verify import Canned, answer_problems, probe_script

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
    assert f"{load_platform().host.venvs.runtime}/bin/python -m synapscribe.host_probe" in script
    assert len(script) < 60_000, "SendCommand's parameters stay well inside the document's limit"


def test_verify_runs_the_host_tests_through_the_ssm_backend() -> None:
    """The command line verify gives pytest: the SSM backend's URL, and no test is left out that
    does not exist (a renamed test would silently run again)."""
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(subprocess, "run", fake_run)
        assert verify.host_tests(CANNED_DIR.parents[2])("i-0123456789abcdef0") == 0
    (argv,) = seen
    assert argv[argv.index("--hosts") + 1] == "ssm://i-0123456789abcdef0"
    host_tests = (CANNED_DIR.parents[1] / "host" / "test_host.py").read_text()
    assert f"def {verify.PARSE_FLAGS_LOCALLY}(" in host_tests
