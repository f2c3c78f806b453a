"""Lecture-affinity routing end to end: `synapscribe local --agentcore-hosts 2` runs two AgentCore
hosts on one model server (the stand-in), each in the host registry; the WebSocket handler sends
each lecture's questions to the lecture's own host (edge/routing.py, edge/affinity.py).

20 questions on 4 lectures: every question of a lecture is answered by the host the registry's
rendezvous ranking names, and each lecture's items go to the model server with their data once in
all (the prefix of every later question is the lecture by uuid: agentcore/media_refs.py). Then one
host is killed (SIGKILL, as a spot interruption leaves it: its registry item still fresh): the next
question on each of its lectures goes to the other host, which sends that lecture's data once, and
every question still gets exactly one final.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_uploads import upload_file
from synapscribe.contract import Lecture
from synapscribe.edge import routing
from synapscribe.host_registry import host_from_item
from synapscribe_local.aws import LOCAL_RESOURCES
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import QueryResult, StackClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600), pytest.mark.needs_tool("espeak-ng")]

LECTURES = 4
QUESTIONS_EACH = 5
HOSTS = ("agentcore", "agentcore-2")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess(agentcore_hosts=2) as running:
        yield running


def served_by(stack: LocalStackProcess) -> dict[str, str]:
    """requestId -> the host whose log has the query's figures."""
    out = {}
    for name in HOSTS:
        for line in (stack.workdir / "logs" / f"{name}.log").read_text().splitlines():
            start = line.find('{"requestId"')
            if start >= 0 and '"event": "query"' in line:
                out[json.loads(line[start:])["requestId"]] = name
    return out


def data_sends(stack: LocalStackProcess) -> dict[tuple[str, str], int]:
    """(host, lecture) -> requests that carried the lecture's items with their data."""
    counts: dict[tuple[str, str], int] = {}
    for name in HOSTS:
        text = (stack.workdir / "logs" / f"{name}.log").read_text()
        for lecture in re.findall(r"lecture (\S+): its \d+ item\(s\) sent with their data", text):
            counts[(name, lecture)] = counts.get((name, lecture), 0) + 1
    return counts


def owners(stack: LocalStackProcess, lectures: list[str]) -> dict[str, str]:
    """Each lecture's host by the registry's ranking, by host name."""
    table = stack.aws_client("dynamodb")
    items = table.scan(TableName=LOCAL_RESOURCES["SYNAPSCRIBE_HOSTS_TABLE"])["Items"]
    hosts = [h for h in (host_from_item({k: _plain(v) for k, v in i.items()}) for i in items) if h]
    assert len(hosts) == 2, hosts
    by_url = {url: name for name, url in stack.info["services"].items()}
    out = {}
    for lecture in lectures:
        owner = routing.candidates(lecture, hosts, time.time(), 20)[0]
        out[lecture] = by_url[owner.url]
    return out


def _plain(value: dict[str, Any]) -> Any:
    ((kind, v),) = value.items()
    if kind == "N":
        return float(v)
    if kind == "L":
        return [_plain(x) for x in v]
    return v


async def ready_lecture(client: StackClient, data: bytes) -> str:
    lecture_id = (await upload_file(client, data, "lecture.mp3")).uploadId
    while True:
        push = await client.wait_for(
            lambda r: r.type == "lecture" and (r.data or {}).get("lectureId") == lecture_id, within=120
        )
        assert isinstance(push.message, Lecture)
        if push.message.status in ("ready", "rejected"):
            assert push.message.status == "ready", push.message.reason
            return lecture_id


async def ask(client: StackClient, session_id: str, text: str) -> QueryResult:
    result = await client.query(session_id, within=60, voice=False, text=text)
    finals = [m for m in result.messages if m.type in ("answer", "error")]
    assert len(finals) == 1 and result.answer is not None, [m.raw for m in result.messages]
    return result


@pytest.fixture(scope="module")
def lecture_bytes(lecture_audio: Any) -> bytes:
    return Path(lecture_audio(0.5)).read_bytes()


async def test_a_lectures_questions_go_to_its_own_host_and_move_when_it_dies(
    stack: LocalStackProcess, lecture_bytes: bytes
) -> None:
    data = lecture_bytes
    clients = [await StackClient.connect(stack.url, identity=f"affinity-{n}") for n in range(LECTURES)]
    try:
        lectures = [await ready_lecture(c, data) for c in clients]
        sessions = []
        for client, lecture in zip(clients, lectures, strict=True):
            got = await client.request({"action": "startSession", "lectureId": lecture}, "session")
            sessions.append(str(got.data["sessionId"]))  # type: ignore[index]
        asked: dict[str, list[str]] = {lec: [] for lec in lectures}
        for n in range(QUESTIONS_EACH):
            results = await asyncio.gather(
                *(
                    ask(c, s, f"Question {n} about the lecture?")
                    for c, s in zip(clients, sessions, strict=True)
                )
            )
            for lecture, result in zip(lectures, results, strict=True):
                asked[lecture].append(result.request_id)
        await asyncio.sleep(0.5)  # the last figures are logged after the final
        hosts = served_by(stack)
        owner = owners(stack, lectures)
        for lecture in lectures:
            assert {hosts[r] for r in asked[lecture]} == {owner[lecture]}, (lecture, owner)
        sends = data_sends(stack)
        assert {lec: sum(v for (h, x), v in sends.items() if x == lec) for lec in lectures} == {
            lec: 1 for lec in lectures
        }, sends

        # One host dies as a spot instance does (its registry item still fresh).
        victim = owner[lectures[0]]
        os.kill(stack.info["pids"][victim], signal.SIGKILL)
        survivor = next(h for h in HOSTS if h != victim)
        after = await asyncio.gather(
            *(ask(c, s, "And one more question?") for c, s in zip(clients, sessions, strict=True))
        )
        await asyncio.sleep(0.5)
        hosts = served_by(stack)
        sends_after = data_sends(stack)
        for lecture, result in zip(lectures, after, strict=True):
            assert hosts[result.request_id] == survivor, (lecture, owner[lecture])
            if owner[lecture] == victim:  # moved: its data sent once on the survivor
                assert sends_after.get((survivor, lecture), 0) == 1, sends_after
            else:
                assert sends_after.get((survivor, lecture), 0) == sends.get((survivor, lecture), 0)
    finally:
        for client in clients:
            await client.close()
