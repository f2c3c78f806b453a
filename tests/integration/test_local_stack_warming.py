"""Warming from zero on the local stack (issue 12, "Done when"): a question asked while no GPU host
serves starts one, the student sees `warming`, then the answer.

`synapscribe local --fleet-at-zero` stands for the deployed fleet with an Auto Scaling group on
moto at desired capacity 0 (local/fleet.py): AgentCore is not running and its port refuses
connections, as an empty target group does. The WebSocket handler's hand-off fails, it sets the
group's desired capacity to 1 over moto's HTTP API (edge/warming.py), pushes `warming` and parks
the question; the stack's supervisor sees the group scaled out and starts AgentCore (a real
process); the sweeper, on its timer, hands the parked question over once AgentCore accepts it,
and AgentCore streams the answer to the same connection. Real processes, real HTTP and WebSocket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.aws import LOCAL_CREDENTIALS
from synapscribe_local.fleet import GROUP_NAME
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.checks import stream_problems
from synapscribe_ops.smoke.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SWEEP_INTERVAL = 1.0


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess(sweep_interval=SWEEP_INTERVAL, fleet_at_zero=True) as running:
        yield running


def _desired(stack: LocalStackProcess) -> int:
    autoscaling: Any = boto3.client(
        "autoscaling",
        endpoint_url=stack.info["awsEndpoint"],
        region_name=stack.info["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP_NAME])[
        "AutoScalingGroups"
    ]
    return int(group["DesiredCapacity"])


async def _ready_session(client: StackClient) -> str:
    """A short lecture (audio mode: ready without AgentCore), and a session on it."""
    path = audiogen.cached_lecture(0.25)
    data = path.read_bytes()
    upload = await client.request(
        {"action": "createUpload", "kind": "lecture", "filename": path.name, "contentType": "audio/mpeg",
         "sizeBytes": len(data)},
        "uploadUrl",
    )  # fmt: skip
    assert upload.message is not None, upload.data
    response = await client.upload(upload.message, data, path.name, "audio/mpeg")  # type: ignore[arg-type]
    assert response.status_code in (200, 201, 204), response.text
    lecture_id = str(upload.message.uploadId)  # type: ignore[union-attr]
    while True:
        pushed = await client.wait_for(
            lambda r: r.type == "lecture" and (r.data or {}).get("lectureId") == lecture_id, within=60
        )
        assert pushed.data is not None
        if pushed.data["status"] in ("ready", "rejected"):
            break
    assert pushed.data["status"] == "ready", pushed.data
    session = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
    assert session.data is not None and session.type == "session", session.data
    return str(session.data["sessionId"])


async def _stop_while_parked(client: StackClient, session_id: str) -> None:
    """A question parked for the starting host, stopped by the student before the host is up: one
    `answer` with `stopped`, at once, and it is never handed to AgentCore."""
    await client.send(
        {
            "action": "query",
            "sessionId": session_id,
            "requestId": "q-stopped",
            "text": "Stop me.",
            "voice": False,
        }
    )
    assert (await client.wait_type("warming", "error", request_id="q-stopped", within=30)).type == "warming"
    await client.send({"action": "cancel", "sessionId": session_id, "requestId": "q-stopped"})
    final = await client.wait_type("answer", "error", request_id="q-stopped", within=10)
    assert final.data is not None and final.data["type"] == "answer" and final.data["stopped"] is True, (
        final.data
    )
    assert final.data["text"] == "" and final.data["audio"] == []


async def test_a_question_with_no_healthy_host_sees_warming_then_the_answer(stack: LocalStackProcess) -> None:
    agentcore = stack.info["services"]["agentcore"]
    # No host: nothing listens where AgentCore would, and the group wants none.
    async with httpx.AsyncClient(timeout=5.0) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{agentcore}/ready")
    assert _desired(stack) == 0
    async with await StackClient.connect(stack.url, identity="warming-student") as client:
        session_id = await _ready_session(client)
        await _stop_while_parked(client, session_id)
        result = await client.query(session_id, text="What is the lecture about?", voice=False, within=150)
        # The host is up and the other question answered: the stopped one had its one final only.
        stopped_finals = [
            r for r in client.history if r.request_id == "q-stopped" and r.type in ("answer", "error")
        ]
        assert len(stopped_finals) == 1, [r.data for r in stopped_finals]
    types = [m.type for m in result.messages]
    assert types[0] == "warming", (types, stack.log_tail())
    warming = result.messages[0].data
    assert warming is not None
    startup = load_platform().fleet.host_startup_seconds
    assert warming["estimatedSeconds"] == startup and warming["waitSeconds"] == 2 * startup
    assert f"about {startup} s" in warming["message"]
    assert result.answer is not None, (types, result.error, stack.log_tail())
    assert stream_problems(result, voice_input=False, voice_output=False) == []
    assert _desired(stack) == 1
    async with httpx.AsyncClient(timeout=5.0) as http:
        assert (await http.get(f"{agentcore}/ready")).status_code == 200
