"""On the local stack the sweeper runs on its schedule: a transcript-mode lecture left
`transcribing` with an expired lease (its AgentCore died) is handed to AgentCore again and
becomes `ready` without anyone asking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from synapscribe.platform import load_platform
from synapscribe.store import SWEEP_ATTRIBUTE
from synapscribe_local import audiogen
from synapscribe_local.aws import LOCAL_CREDENTIALS, LOCAL_RESOURCES
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess(sweep_interval=1.0) as running:
        yield running


def _aws(stack: LocalStackProcess, service: str) -> Any:
    return boto3.resource(
        service,
        endpoint_url=stack.info["awsEndpoint"],
        region_name=stack.info["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def test_a_lecture_left_transcribing_by_a_dead_agentcore_is_resumed(stack: LocalStackProcess) -> None:
    platform = load_platform()
    data = audiogen.cached_lecture(0.25).read_bytes()
    lecture_id, owner = "lec_orphaned0001", "sweeper-test"
    key = f"{platform.storage.prefixes.lectures}{owner}/{lecture_id}.mp3"
    now = int(time.time())
    table = _aws(stack, "dynamodb").Table(LOCAL_RESOURCES["SYNAPSCRIBE_LECTURES_TABLE"])
    # As a dead AgentCore left it: its hand-off accepted, claimed, its lease over.
    table.put_item(
        Item={
            "lectureId": lecture_id,
            "owner": owner,
            "status": "transcribing",
            SWEEP_ATTRIBUTE: "transcribing",  # as AgentCore's claim writes it with the status
            "contextMode": "transcript",
            "key": key,
            "contentType": "audio/mpeg",
            "durationSeconds": 15,
            "handoffAccepted": True,
            "createdAt": now - 3600,
            "updatedAt": now,
            "transcribeLeaseUntil": now - 60,
            "transcribeWorker": "dead-host:1234:abcdef",
            "expiresAt": now + 86400,
        }
    )
    # The recording (its upload event finds the hand-off already accepted: nothing to do).
    _aws(stack, "s3").Bucket(stack.info["bucket"]).put_object(Key=key, Body=data)
    time.sleep(3)
    assert (table.get_item(Key={"lectureId": lecture_id}).get("Item") or {}).get("status") == "transcribing"
    # Nothing done to it for longer than the sweeper waits.
    table.update_item(
        Key={"lectureId": lecture_id},
        UpdateExpression="SET updatedAt = :u",
        ExpressionAttributeValues={":u": now - platform.sweeper.stale_handoff_seconds - 60},
    )
    deadline = time.monotonic() + 120
    item: dict[str, Any] = {}
    while time.monotonic() < deadline:
        item = table.get_item(Key={"lectureId": lecture_id}, ConsistentRead=True).get("Item") or {}
        if item.get("status") in ("ready", "rejected"):
            break
        time.sleep(0.5)
    assert item.get("status") == "ready", (item, stack.log_tail())
    assert int(item["sweepResumes"]) == 1
    assert item["transcribeWorker"] != "dead-host:1234:abcdef"
