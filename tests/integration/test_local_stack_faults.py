"""Faults on the local stack (issue 11 §3): AgentCore killed (SIGKILL) mid-transcription and
mid-answer, the model server killed mid-stream. The stack's supervisor restarts a child that
failed, as the hosts' systemd units do (Restart=on-failure), so the same stack goes on.

Bounds, from platform.yaml where they exist:
- a question whose model server dies mid-stream gets exactly one final message, `error`
  `upstream_unavailable`, within `agentcore.upstream_timeout_seconds`; the next one is answered
  once the restarted model server is ready;
- a lecture whose AgentCore dies mid-transcription stays `transcribing` while its claim holds
  (never transcribed twice), then the sweeper resumes it and it becomes `ready` without anyone
  asking. The waits are shortened for the test, and say so: the sweeper runs every 1 s
  (`--sweep-interval`, instead of `sweeper.interval_seconds`), and the claim's lease and
  `sweeper.stale_handoff_seconds` are made to have passed by moving the item's timestamps back
  (as tests/integration/test_local_stack_sweeper.py does), not by waiting 15 minutes;
- a question whose AgentCore dies mid-answer gets exactly one final, an `error`
  `upstream_unavailable`, from the sweeper once the question's deadline (`answerDeadlines` on the
  connection item, `quotas.job_lease_seconds` after AgentCore claimed it) has passed, and the
  owner's job slot comes back. Shortened for the test as above: the deadline is moved back, not
  waited for, so the bound is one sweeper interval (1 s) plus a few seconds for the push; in AWS
  it is `quotas.job_lease_seconds` + `sweeper.interval_seconds` after the claim.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from stack_uploads import upload_file
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.aws import LOCAL_CREDENTIALS, LOCAL_RESOURCES
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.needs_tool("espeak-ng")]

LECTURE_MINUTES = 12
SWEEP_INTERVAL = 1.0
#: Slow enough to kill inside: a segment takes 0.3 s, an answer ~170 tokens at 10 tokens/s.
ENV = {"SYNAPSCRIBE_STANDIN_TRANSCRIPTION_SECONDS": "0.3", "SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND": "10"}
#: How long a restarted child may take to be ready again (AgentCore ~4 s, the stand-in ~2 s here).
RESTART_SECONDS = 30.0


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess(env=ENV, sweep_interval=SWEEP_INTERVAL) as running:
        yield running


def child_pid(stack: LocalStackProcess, name: str) -> int:
    """The running child `synapscribe <name>` of the stack (its pid changes when restarted)."""
    assert stack.process is not None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == stack.process.pid and b"synapscribe.cli" in argv and name.encode() in argv:
            return int(proc.name)
    raise AssertionError(f"no running {name} under the stack:\n{stack.log_tail()}")


def kill(stack: LocalStackProcess, name: str) -> int:
    pid = child_pid(stack, name)
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_restarted(stack: LocalStackProcess, name: str, old_pid: int, ready_url: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < RESTART_SECONDS:
        assert stack.process is not None and stack.process.poll() is None, stack.log_tail()
        try:
            if child_pid(stack, name) != old_pid and httpx.get(ready_url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except (AssertionError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{name} was not restarted within {RESTART_SECONDS} s:\n{stack.log_tail()}")


def table(stack: LocalStackProcess, name: str) -> Any:
    return boto3.resource(
        "dynamodb",
        endpoint_url=stack.info["awsEndpoint"],
        region_name=stack.info["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).Table(LOCAL_RESOURCES[name])


def lectures_table(stack: LocalStackProcess) -> Any:
    return table(stack, "SYNAPSCRIBE_LECTURES_TABLE")


def overdue(stack: LocalStackProcess, request_id: str) -> tuple[str, str]:
    """Move question `request_id`'s answer deadline into the past (see the module docstring);
    its connection id and final-claim key."""
    connections = table(stack, "SYNAPSCRIBE_CONNECTIONS_TABLE")
    for item in connections.scan(ConsistentRead=True)["Items"]:
        for key in item.get("answerDeadlines", {}):
            if key.startswith(f"{request_id}@"):
                connections.update_item(
                    Key={"connectionId": item["connectionId"]},
                    UpdateExpression="SET answerDeadlines.#r.#u = :past",
                    ExpressionAttributeNames={"#r": key, "#u": "until"},
                    ExpressionAttributeValues={":past": int(time.time()) - 1},
                )
                return str(item["connectionId"]), key
    raise AssertionError(f"no answer deadline recorded for {request_id}:\n{stack.log_tail()}")


async def upload_lecture(client: StackClient, minutes: float) -> str:
    path = audiogen.cached_lecture(minutes)
    return (await upload_file(client, path.read_bytes(), path.name)).uploadId


async def finals(client: StackClient, request_id: str, within: float) -> list[Any]:
    """Every `answer`/`error` for `request_id` that arrives within `within` s."""
    got: list[Any] = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(await client.wait_type("answer", "error", request_id=request_id, within=left))
        except Exception:
            break
    return got


async def test_agentcore_killed_mid_transcription_then_the_model_server_mid_stream(
    stack: LocalStackProcess,
) -> None:
    platform = load_platform()
    agentcore = stack.info["services"]["agentcore"]
    table = lectures_table(stack)
    async with await StackClient.connect(stack.url, identity="fault-student") as client:
        lecture_id = await upload_lecture(client, LECTURE_MINUTES)
        transcribing = await client.wait_for(
            lambda r: r.type == "lecture" and (r.data or {}).get("lectureId") == lecture_id, within=60
        )
        assert transcribing.data is not None and transcribing.data["status"] == "transcribing"
        await asyncio.sleep(1.0)  # a few segments in
        old = kill(stack, "agentcore")
        restarted_in = wait_restarted(stack, "agentcore", old, f"{agentcore}/ready")

        # The dead AgentCore's claim holds: the restarted one does not take the lecture over early.
        item = table.get_item(Key={"lectureId": lecture_id}, ConsistentRead=True)["Item"]
        assert item["status"] == "transcribing", item
        assert int(item["transcribeLeaseUntil"]) > time.time()
        # The lease and stale_handoff_seconds, passed (see the module docstring).
        now = int(time.time())
        table.update_item(
            Key={"lectureId": lecture_id},
            UpdateExpression="SET transcribeLeaseUntil = :l, updatedAt = :u",
            ExpressionAttributeValues={
                ":l": now - 1,
                ":u": now - platform.sweeper.stale_handoff_seconds - 1,
            },
        )
        resumed_at = time.monotonic()
        # Bound: one sweeper interval, then the whole transcription again (~40 segments at 0.3 s,
        # 4 at a time) with room for this loaded machine.
        bound = SWEEP_INTERVAL + 60.0
        while time.monotonic() - resumed_at < bound:
            item = table.get_item(Key={"lectureId": lecture_id}, ConsistentRead=True)["Item"]
            if item["status"] in ("ready", "rejected"):
                break
            await asyncio.sleep(0.5)
        assert item["status"] == "ready", (item, stack.log_tail())
        assert int(item["sweepResumes"]) == 1
        log = (stack.workdir / "logs" / "agentcore.log").read_text()
        assert log.count(f"lecture {lecture_id}: transcribed ") == 1, log[-3000:]

        # The model server, killed mid-stream: one final, an error, within the upstream timeout.
        session = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
        assert session.data is not None, session
        session_id = session.data["sessionId"]
        await client.send(
            {"action": "query", "sessionId": session_id, "requestId": "q-model", "text": "What is it about?"}
        )
        await client.wait_type("answerDelta", request_id="q-model", within=30)
        old = kill(stack, "standin")
        got = await finals(client, "q-model", within=platform.agentcore.upstream_timeout_seconds)
        assert [(m.type, (m.data or {}).get("code")) for m in got] == [("error", "upstream_unavailable")]
        wait_restarted(stack, "standin", old, f"{stack.info['services']['model']}/models")
        again = await client.query(session_id, text="What is it about?", voice=False, within=60)
        assert again.answer is not None, [m.data for m in again.messages]
        assert "restarting it" in stack.log_tail(200)
    print(f"agentcore restarted in {restarted_in:.1f} s")


async def test_agentcore_killed_mid_answer_still_sends_one_final(stack: LocalStackProcess) -> None:
    agentcore = stack.info["services"]["agentcore"]
    async with await StackClient.connect(stack.url, identity="fault-student-2") as client:
        lecture_id = await upload_lecture(client, 0.25)
        while True:
            pushed = await client.wait_for(
                lambda r: r.type == "lecture" and (r.data or {}).get("lectureId") == lecture_id, within=60
            )
            if pushed.data is not None and pushed.data["status"] in ("ready", "rejected"):
                break
        session = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
        assert session.data is not None, session
        await client.send(
            {"action": "query", "sessionId": session.data["sessionId"], "requestId": "q-ac", "text": "Why?"}
        )
        await client.wait_type("answerDelta", request_id="q-ac", within=30)
        old = kill(stack, "agentcore")
        wait_restarted(stack, "agentcore", old, f"{agentcore}/ready")
        assert await finals(client, "q-ac", within=2) == []  # nobody answers before the deadline
        connection_id, key = overdue(stack, "q-ac")
        # Bound: one sweeper interval, plus a push through the local @connections (see the docstring).
        got = await finals(client, "q-ac", within=SWEEP_INTERVAL + 5.0)
        assert [(m.type, (m.data or {}).get("code")) for m in got] == [("error", "upstream_unavailable")]
        item = table(stack, "SYNAPSCRIBE_CONNECTIONS_TABLE").get_item(
            Key={"connectionId": connection_id}, ConsistentRead=True
        )["Item"]
        assert item["finals"][key] == "sweeper" and key not in item["answerDeadlines"]
        ledger = table(stack, "SYNAPSCRIBE_LIMITS_TABLE").get_item(
            Key={"limitId": "owner#fault-student-2"}, ConsistentRead=True
        )["Item"]
        assert key not in ledger.get("jobs", {}), ledger  # the job slot came back
        assert await finals(client, "q-ac", within=2 * SWEEP_INTERVAL) == []  # and only one final
