"""The sweeper on moto: a lecture left `transcribing` past its lease is handed to AgentCore again
(once per stale period, at most `max_resumes` times, then rejected), a live lease is left alone,
and a pending lecture whose upload never came is removed with its quota."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.sweeper import sweep
from synapscribe.edge.validate_lecture import TranscriptionNotStarted
from synapscribe.quotas import OwnerQuotas

from .edge_support import AgentCoreRecorder, upload, validate


def transcribing(deps: EdgeDeps, lecture_id: str, lease_until: int | None, updated_ago: int) -> None:
    key = f"lectures/alice/{lecture_id}.mp3"
    item = deps.store.pending_lecture_item(lecture_id, "alice", key, "audio/mpeg", 100, None, "l.mp3")
    deps.quotas.reserve_lecture_upload(item)
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=b"audio")
    fields: dict[str, Any] = {
        "status": "transcribing",
        "contextMode": "transcript",
        "expiresAt": deps.store.retention_end(item["createdAt"]),  # as the validator sets it
    }
    if lease_until is not None:
        fields["transcribeLeaseUntil"] = lease_until
    deps.store.update_lecture(lecture_id, fields)
    # updatedAt as it was when the lecture was last touched.
    deps.store.lectures.update_item(
        Key={"lectureId": lecture_id},
        UpdateExpression="SET updatedAt = :u",
        ExpressionAttributeValues={":u": deps.store.now() - updated_ago},
    )


def at(deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch, t: int) -> None:
    monkeypatch.setattr(deps.store, "_clock", lambda: t)


def transcribe_calls(agentcore: AgentCoreRecorder) -> list[str]:
    return [path for path, _ in agentcore.requests if path.endswith("/transcribe")]


def test_expired_lease_is_handed_over_once_and_a_live_one_is_left(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = deps.store.now()
    stale = deps.platform.sweeper.stale_handoff_seconds
    transcribing(deps, "lec_dead", lease_until=now - 1, updated_ago=stale + 400)
    transcribing(deps, "lec_live", lease_until=now + 300, updated_ago=stale + 400)
    transcribing(deps, "lec_fresh", lease_until=None, updated_ago=10)  # just handed over
    report = sweep(deps)
    assert report.resumed == ["lec_dead"] and not report.failed
    assert transcribe_calls(agentcore) == ["/v1/lectures/lec_dead/transcribe"]
    # The next run (AgentCore has not claimed it yet) leaves it: it was touched just now.
    assert sweep(deps).resumed == []
    assert len(transcribe_calls(agentcore)) == 1
    # A stale period later, nobody took it: handed over again (so is the other one, whose lease
    # has run out meanwhile without AgentCore finishing it).
    at(deps, monkeypatch, now + stale + 30)  # (+30: the seconds this test itself has taken)
    assert sorted(sweep(deps).resumed) == ["lec_dead", "lec_fresh", "lec_live"]
    item = deps.store.get_lecture("lec_dead", "alice")
    assert item is not None and item["sweepResumes"] == 2 and item["status"] == "transcribing"


def test_a_lecture_never_finished_is_rejected_after_max_resumes(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = deps.store.now()
    stale = deps.platform.sweeper.stale_handoff_seconds
    transcribing(deps, "lec_poison", lease_until=now - 1, updated_ago=stale + 5)
    for i in range(deps.platform.sweeper.max_resumes):
        at(deps, monkeypatch, now + i * (stale + 30))
        assert sweep(deps).resumed == ["lec_poison"]
    at(deps, monkeypatch, now + deps.platform.sweeper.max_resumes * (stale + 30))
    assert sweep(deps).rejected == ["lec_poison"]
    item = deps.store.get_lecture("lec_poison", "alice")
    assert item is not None and item["status"] == "rejected" and "never finished" in item["reason"]
    listing = deps.s3.list_objects_v2(Bucket=deps.resources.bucket).get("Contents", [])
    assert listing == []
    assert OwnerQuotas(deps.store, deps.platform).ledger("alice").lectures == {}


def test_pending_lecture_whose_upload_never_came_is_removed(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = deps.store.pending_lecture_item(
        "lec_gone", "alice", "lectures/alice/lec_gone.mp3", "audio/mpeg", 5, None, "x"
    )
    deps.quotas.reserve_lecture_upload(item)
    assert sweep(deps).expired == []  # not yet
    at(deps, monkeypatch, deps.store.now() + deps.platform.storage.pending_upload_seconds)
    assert sweep(deps).expired == ["lec_gone"]
    assert deps.store.lectures.get_item(Key={"lectureId": "lec_gone"}).get("Item") is None
    ledger = OwnerQuotas(deps.store, deps.platform).ledger("alice")
    assert ledger.lectures == {} and ledger.uploads == {}
    assert agentcore.requests == []


def test_each_run_is_bounded(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeper = deps.platform.sweeper.model_copy(update={"max_per_run": 2})
    quotas = deps.platform.quotas.model_copy(update={"lectures": 10, "uploads_in_progress": 10})
    monkeypatch.setattr(
        deps, "platform", deps.platform.model_copy(update={"sweeper": sweeper, "quotas": quotas})
    )
    now = deps.store.now()
    for i in range(5):
        transcribing(deps, f"lec_{i}", lease_until=now - 1, updated_ago=sweeper.stale_handoff_seconds + 5)
    assert len(sweep(deps).resumed) == 2
    assert len(sweep(deps).resumed) == 2
    assert len(sweep(deps).resumed) == 1
    assert len(transcribe_calls(agentcore)) == 5


def test_handoff_timeouts_raise_and_the_sweeper_resumes_the_lecture(
    deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-off AgentCore never confirms fails the invocation (Lambda retries it, then sends the
    event to the on-failure destination); the lecture is then resumed by the sweeper."""
    monkeypatch.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_timeout_seconds": 0.3}))
    agentcore.delay = 1.0
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    for _ in range(3):  # the invocation and Lambda's two retries
        with pytest.raises(TranscriptionNotStarted, match="unconfirmed"):
            validate(deps, key)
    agentcore.delay = 0.0
    agentcore.requests.clear()
    at(deps, monkeypatch, deps.store.now() + deps.platform.sweeper.stale_handoff_seconds)
    assert sweep(deps).resumed == [lecture_id]
    assert transcribe_calls(agentcore) == [f"/v1/lectures/{lecture_id}/transcribe"]


def test_the_sweeper_queries_its_index_and_never_scans(
    deps: EdgeDeps, agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settled lectures are never read: the sweeper's Query sees only the index's items, and a
    Scan of either table would fail this test."""
    now = deps.store.now()
    stale = deps.platform.sweeper.stale_handoff_seconds
    for i in range(30):
        item = deps.store.pending_lecture_item(f"lec_ready{i}", "alice", f"lectures/alice/r{i}.mp3", "audio/mpeg", 1, None, "l.mp3")  # fmt: skip
        deps.store.lectures.put_item(Item=item)
        deps.store.update_lecture(f"lec_ready{i}", {"status": "ready", "contextMode": "audio"})
    transcribing(deps, "lec_dead", lease_until=now - 1, updated_ago=stale + 400)

    def no_scan(**kwargs: Any) -> None:
        raise AssertionError(f"the sweeper scanned a table: {kwargs}")

    read: list[str] = []
    query = type(deps.store.lectures).query

    def counting_query(table: Any, **kwargs: Any) -> Any:
        page = query(table, **kwargs)
        read.extend(str(i.get("lectureId") or i.get("connectionId")) for i in page.get("Items", []))
        return page

    for table in (deps.store.lectures, deps.store.connections):
        monkeypatch.setattr(table, "scan", no_scan)
    monkeypatch.setattr(type(deps.store.lectures), "query", counting_query)
    assert sweep(deps).resumed == ["lec_dead"]
    assert read == ["lec_dead"]
