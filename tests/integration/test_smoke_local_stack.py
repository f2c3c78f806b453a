"""The smoke test (`synapscribe smoke`) against the local stack, as CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "smoke", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess() as running:
        yield running


def test_smoke_passes_against_the_local_stack(stack: LocalStackProcess, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    assert "standin" in stack.info["pids"], "the local stack without VLLM_BASE_URL runs the stand-in"
    done = smoke("--url", stack.url, "--expect-standin", "--json", str(report_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout
    report = json.loads(report_path.read_text())
    assert report["ok"] is True and report["failures"] == []
    assert report["expectStandin"] is True
    names = [s["name"] for s in report["steps"]]
    for expected in (
        "text question (name one term)",
        "voice question (inline audio)",
        "follow-up question (needs the earlier turn)",
        "a non-audio upload is rejected",
    ):
        assert expected in names
    kinds = [t["kind"] for t in report["conversation"]]
    assert kinds == ["voice", "text", "follow-up"]
    voice, text, follow_up = report["conversation"]
    assert all(t["answer"].startswith("[stand-in]") for t in report["conversation"])
    assert voice["heard"].startswith("[stand-in]")
    assert "chloroplast" in text["answer"] and "chloroplast" in follow_up["answer"]
    assert text["audio"] > 0 and voice["audio"] > 0 and follow_up["audio"] == 0
    assert voice["heard"], "the voice question's transcript is missing"
    assert all(t["client_timings"]["totalMs"] > 0 for t in report["conversation"])
    assert report["lecture"]["status"] == "ready"


def test_smoke_fails_with_a_summary_when_over_budget(stack: LocalStackProcess, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    done = smoke("--url", stack.url, "--max-first-token-ms", "0.001", "--json", str(report_path), "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "over the budget" in done.stdout
    report = json.loads(report_path.read_text())
    assert report["ok"] is False
    assert any("text question" in f and "firstDeltaMs" in f for f in report["failures"])


def test_smoke_fails_when_nothing_listens(tmp_path: Path) -> None:
    from synapscribe_local.supervisor import free_port

    done = smoke("--url", f"ws://127.0.0.1:{free_port()}", "--quiet", "--lecture", str(_tiny_mp3(tmp_path)))
    assert done.returncode == 1
    assert "connect" in done.stdout and "FAILED" in done.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ([], "--url"),
        (["--url", "http://127.0.0.1:1"], "--url"),
        (["--url", "wss://x.example/prod", "--region", "eu-west-1"], "--identity-pool-id"),
        (
            ["--url", "wss://x.example/prod", "--region", "eu-west-1", "--identity-pool-id", "eu-west-1:1"],
            "--guest-role-arn",
        ),
        (["--url", "ws://127.0.0.1:1", "--lecture", "/nonexistent.mp3"], "--lecture"),
        (["--url", "ws://127.0.0.1:1", "--max-answer-ms", "-1"], "--max-answer-ms"),
        (["--stack-outputs", "/nonexistent.json"], "--stack-outputs"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(args: list[str], flag: str) -> None:
    done = smoke(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert flag in done.stderr


def _tiny_mp3(tmp_path: Path) -> Path:
    from synapscribe_local import audiogen

    return audiogen.speak("hello", tmp_path / "tiny.mp3").path


def test_scripts_smoke_wrapper_passes_flags_and_status() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [str(root / "scripts" / "smoke"), "--url", "http://not-a-websocket"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 2
    assert "--url must be ws:// or wss://" in done.stderr
