"""Regression: a lecture long enough for transcript mode on the local stack goes `transcribing`
then `ready` (never back to `pending`, never `ready` first) and is then answered over its
transcript, also when the edge's handoff to AgentCore goes unanswered within its timeout
(the case that used to leave the lecture `pending` for good)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stack_uploads import upload_file
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import Received, StackClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.needs_tool("espeak-ng"),
]


LECTURE_MINUTES = 12
#: Each segment takes this long in the stand-in, so `transcribing` lasts long enough to be seen.
TRANSCRIPTION_SECONDS = "0.3"

UNANSWERED = "handoff unanswered"
CASES = {
    "handoff answered": {},
    # The edge gives up waiting for AgentCore's answer long before it comes (AgentCore still
    # takes the job): what a slow AgentCore or a loaded host did to the 3 s default. The same
    # timeout applies to the edge's query handoff, so this stack cannot answer questions.
    UNANSWERED: {"SYNAPSCRIBE_AGENTCORE_TIMEOUT_SECONDS": "0.001"},
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def stack(request: pytest.FixtureRequest) -> Iterator[tuple[LocalStackProcess, str]]:
    env = {"SYNAPSCRIBE_STANDIN_TRANSCRIPTION_SECONDS": TRANSCRIPTION_SECONDS, **CASES[request.param]}
    with LocalStackProcess(env=env) as running:
        yield running, request.param


def _lecture(lecture_id: str) -> Any:
    return lambda r: bool(r.type == "lecture" and r.data and r.data.get("lectureId") == lecture_id)


async def test_transcript_mode_lecture_becomes_ready_and_is_answered(
    stack: tuple[LocalStackProcess, str],
) -> None:
    running, case = stack
    path = audiogen.cached_lecture(LECTURE_MINUTES)
    data = path.read_bytes()
    assert audiogen.duration_seconds(path) > load_platform().max_audio_lecture_seconds
    async with await StackClient.connect(running.url, identity="transcript-student") as client:
        lecture_id = (await upload_file(client, data, path.name)).uploadId

        pushes: list[Received] = []
        while not pushes or pushes[-1].data["status"] not in ("ready", "rejected"):  # type: ignore[index]
            pushes.append(await client.wait_for(_lecture(lecture_id), within=30, what="a lecture push"))
        statuses = [p.data["status"] for p in pushes]  # type: ignore[index]
        assert statuses == ["transcribing", "ready"], [p.data for p in pushes]
        ready = pushes[-1].data
        assert ready is not None and ready["contextMode"] == "transcript"
        assert ready["durationSeconds"] == pytest.approx(LECTURE_MINUTES * 60, abs=2)
        assert all(p.message is not None for p in pushes), [p.problem for p in pushes]

        got = await client.request({"action": "getLecture", "lectureId": lecture_id}, "lecture")
        assert got.data is not None and got.data["status"] == "ready"
        got = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
        assert got.data is not None and got.data.get("contextMode") == "transcript", got.data
        session_id = got.data["sessionId"]
        if case == UNANSWERED:
            # Lambda retries the failed invocation 2 s later: it must not start a second run.
            await asyncio.sleep(max(0.0, pushes[0].at + 3.0 - time.monotonic()))
        log = (running.workdir / "logs" / "agentcore.log").read_text()
        assert log.count(f"lecture {lecture_id}: transcribed ") == 1, log[-3000:]
        if case == UNANSWERED:
            return

        result = await client.query(
            session_id, text="What does the rate of photosynthesis depend on?", voice=False, within=30
        )
        assert not result.timed_out and result.answer is not None, [m.data for m in result.messages]
        answer = result.answer.text
        # The stand-in quotes the lecture material it was given: here the timestamped transcript.
        assert "light, carbon dioxide and temperature" in answer
        assert "read 0 audio item(s)" in answer

    # A late, repeated handoff for the ready lecture is answered 200 and starts nothing.
    agentcore = running.info["services"]["agentcore"]
    async with httpx.AsyncClient(timeout=5) as http:
        again = await http.post(f"{agentcore}/v1/lectures/{lecture_id}/transcribe", json={})
        unknown = await http.post(f"{agentcore}/v1/lectures/lec_{'0' * 32}/transcribe", json={})
    assert again.status_code == 200 and again.json()["status"] == "ready"
    assert unknown.status_code == 404
    log = (running.workdir / "logs" / "agentcore.log").read_text()
    assert log.count(f"lecture {lecture_id}: transcribed ") == 1
