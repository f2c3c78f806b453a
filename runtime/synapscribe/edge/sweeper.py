"""The sweeper: a scheduled Lambda (every `sweeper.interval_seconds`; the local stack runs it on a
timer) that leaves nothing stuck without waiting for a user to ask.

- A lecture left `transcribing` whose transcription lease has run out (its AgentCore died), or
  that nobody claimed `sweeper.stale_handoff_seconds` after the hand-off (every hand-off timed
  out and the event went to the validator's on-failure queue), is handed to AgentCore again.
  AgentCore claims a lecture in DynamoDB before it works on it, so handing it over twice never
  transcribes it twice, and the sweeper records each resume on the item (`sweepResumes`, and
  `updatedAt`, so the next run leaves it alone for another `stale_handoff_seconds`). After
  `sweeper.max_resumes` resumes it is rejected with a reason, so every lecture ends `ready` or
  `rejected`.
- A pending lecture whose upload never came is removed with its quota once
  `storage.pending_upload_seconds` have passed (DynamoDB's TTL deletes lazily; this is prompt).

- A question whose final is overdue (its AgentCore died mid-answer, or after it accepted the
  hand-off and before it claimed the final): the sweeper takes the final over
  (final_claim.take_over; the protocol: docs/interfaces.md, "One final message per question"),
  pushes `error` `upstream_unavailable` and gives the question's job slot back.

Each run does at most `sweeper.max_per_run` of these; the rest waits for the next run. It finds
them with Queries on the tables' sparse index (store.SWEEP_INDEXES: only unsettled lectures and
connections with answer deadlines are in it), never a Scan of the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from synapscribe import final_claim
from synapscribe.ceilings import accrue_gpu_hosts
from synapscribe.contract import ErrorCode, ErrorMessage, Lecture
from synapscribe.edge import warming
from synapscribe.edge.agentcore_client import AgentCoreError, request_transcription
from synapscribe.edge.config import CachedDeps, EdgeDeps
from synapscribe.edge.push import push
from synapscribe.edge.removal import remove_lecture
from synapscribe.store import DEADLINES_ATTRIBUTE, SWEEP_ANSWER, TTL_ATTRIBUTE, UNSETTLED, from_dynamo

log = logging.getLogger(__name__)

deps = CachedDeps()
reset_deps = deps.reset


@dataclass
class SweepReport:
    resumed: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Overdue questions answered with an error, as `<requestId>@<receivedAtMs>`.
    answered: list[str] = field(default_factory=list)
    #: Questions parked while no GPU host was healthy (edge/warming.py), handed to AgentCore.
    warmed: list[str] = field(default_factory=list)
    #: GPU host-seconds accrued by this run (the daily_gpu_host_hours ceiling).
    gpu_host_seconds: int = 0

    @property
    def actions(self) -> int:
        return (
            len(self.resumed) + len(self.rejected) + len(self.expired) + len(self.failed) + len(self.answered)
        ) + len(self.warmed)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "resumed": self.resumed,
            "rejected": self.rejected,
            "expired": self.expired,
            "failed": self.failed,
            "answered": self.answered,
            "warmed": self.warmed,
            "gpuHostSeconds": [str(self.gpu_host_seconds)],
        }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return sweep(deps()).as_dict()


def _unsettled(deps: EdgeDeps) -> Iterator[dict[str, Any]]:
    """Every pending or transcribing lecture item: Queries on the sparse index, never a Scan (the
    table holds every ready lecture of the retention period; the index only these)."""
    for status in UNSETTLED:
        yield from deps.store.sweep_candidates(deps.store.lectures, status)


def is_stale(item: dict[str, Any], now: int, deps: EdgeDeps) -> bool:
    """A transcript-mode lecture nobody is transcribing: its lease over (or never taken) and
    nothing done to it for `stale_handoff_seconds`."""
    if item.get("status") != "transcribing" or item.get("contextMode") != "transcript":
        return False
    lease = item.get("transcribeLeaseUntil")
    if lease is not None and int(lease) >= now:
        return False
    return int(item.get("updatedAt", 0)) + deps.platform.sweeper.stale_handoff_seconds <= now


def is_expired_pending(item: dict[str, Any], now: int, deps: EdgeDeps) -> bool:
    return (
        item.get("status") == "pending"
        and int(item.get("createdAt", 0)) + deps.platform.storage.pending_upload_seconds <= now
    )


def sweep(deps: EdgeDeps) -> SweepReport:
    report = SweepReport()
    now = deps.store.now()
    # Questions first: a student is waiting on each, while a stuck lecture waits for no one.
    _answer_overdue(deps, now, report)
    _hand_over_parked(deps, now, report)
    _sweep_lectures(deps, now, report)
    _accrue_gpu(deps, report)
    if report.actions:
        log.info("sweeper: %s", report.as_dict())
    return report


def _accrue_gpu(deps: EdgeDeps, report: SweepReport) -> None:
    """The fleet's host-time so far today, for the daily_gpu_host_hours ceiling (ceilings.py):
    over it the handler admits no question and starts no host."""
    group = deps.settings.fleet_group
    if not group:
        return
    try:
        hosts = warming.billed_hosts(deps.autoscaling_client(), group)
        report.gpu_host_seconds = accrue_gpu_hosts(
            deps.store.limits, deps.store.now, hosts, deps.platform.sweeper.interval_seconds
        )
    except Exception:
        log.exception("sweeper: the GPU fleet %s's host-time could not be accrued", group)


def _hand_over_parked(deps: EdgeDeps, now: int, report: SweepReport) -> None:
    """Questions parked for a starting GPU host (edge/warming.py): handed over once it answers."""
    done = warming.hand_over_parked(deps, now, deps.platform.sweeper.max_per_run - report.actions)
    report.warmed += done.handed_over
    report.answered += done.timed_out
    report.failed += done.failed


def _sweep_lectures(deps: EdgeDeps, now: int, report: SweepReport) -> None:
    budget = deps.platform.sweeper.max_per_run
    for raw in _unsettled(deps):
        if report.actions >= budget:
            log.info("sweeper: %d actions this run (the most allowed); the rest waits", budget)
            break
        item = from_dynamo(dict(raw))
        lecture_id = str(item["lectureId"])
        try:
            if is_expired_pending(item, now, deps):
                remove_lecture(deps, item)
                report.expired.append(lecture_id)
            elif is_stale(item, now, deps):
                _resume(deps, item, report)
        except Exception:
            log.exception("sweeper: lecture %s could not be handled this run", lecture_id)
            report.failed.append(lecture_id)


def _with_deadlines(deps: EdgeDeps) -> Iterator[dict[str, Any]]:
    """Every connection item that had a question in flight (in the sparse index from its first
    answer deadline until a run finds none left)."""
    yield from deps.store.sweep_candidates(deps.store.connections, SWEEP_ANSWER)


def _answer_overdue(deps: EdgeDeps, now: int, report: SweepReport) -> None:
    budget = deps.platform.sweeper.max_per_run
    for raw in _with_deadlines(deps):
        item = from_dynamo(dict(raw))
        connection_id = str(item["connectionId"])
        deadlines = item.get(DEADLINES_ATTRIBUTE) or {}
        for key, record in deadlines.items():
            if report.actions >= budget:
                return
            try:
                if int(record["until"]) >= now:
                    continue
                _answer_one(deps, connection_id, key, record, now, report)
            except Exception:
                log.exception("sweeper: overdue question %s could not be answered this run", key)
                report.failed.append(key)
        if all(int(r["until"]) < now for r in deadlines.values()):
            _unmark(deps, connection_id)


def _unmark(deps: EdgeDeps, connection_id: str) -> None:
    """Nothing left in flight as read: out of the index (store.unmark_connection does nothing if
    a deadline is there, e.g. one the index did not show yet or one a failed take-over left)."""
    try:
        deps.store.unmark_connection(connection_id)
    except Exception:
        log.exception("sweeper: connection %s stays in the index until the next run", connection_id)


def _answer_one(
    deps: EdgeDeps, connection_id: str, key: str, record: dict[str, Any], now: int, report: SweepReport
) -> None:
    """Take the overdue question's final over and send the error; the claim comes first, so a
    lost race (AgentCore settled meanwhile, or another run won) sends nothing."""
    if not final_claim.take_over(deps.store, connection_id, key, now):
        return
    request_id = str(record.get("requestId") or final_claim.request_id_of(key))
    log.error("sweeper: question %s on %s passed its deadline unanswered; error sent", key, connection_id)
    report.answered.append(key)
    # The slot first: a failed push (410 gone is only logged) must not keep the owner's slot.
    owner = record.get("owner")
    if isinstance(owner, str) and owner:
        deps.quotas.finish_job(owner, key)
    # upstream_unavailable, as for a timed-out hand-off: the answering service went away, and
    # the same question may well be answered if asked again (docs/interfaces.md).
    message = ErrorMessage(
        code=ErrorCode.UPSTREAM_UNAVAILABLE,
        message="the answering service stopped before this answer was complete; ask again",
        requestId=request_id,
    )
    push(deps, connection_id, message)


def _resume(deps: EdgeDeps, item: dict[str, Any], report: SweepReport) -> None:
    lecture_id = str(item["lectureId"])
    resumes = int(item.get("sweepResumes") or 0)
    if resumes >= deps.platform.sweeper.max_resumes:
        _reject(deps, item, resumes)
        report.rejected.append(lecture_id)
        return
    # Recorded first (on condition it is still transcribing): a second sweeper run that overlaps
    # this one finds it touched just now and leaves it.
    updated = deps.store.update_lecture(
        lecture_id, {"sweepResumes": resumes + 1}, expected_status="transcribing"
    )
    if updated is None:
        return
    try:
        request_transcription(deps.settings.agentcore_url, item, deps.settings.agentcore_timeout_seconds)
    except AgentCoreError as exc:
        # The next run asks again (after stale_handoff_seconds): no retry loop inside a run.
        log.warning("sweeper: lecture %s not handed over: %s", lecture_id, exc)
        report.failed.append(lecture_id)
        return
    log.info("sweeper: lecture %s handed to AgentCore again (resume %d)", lecture_id, resumes + 1)
    report.resumed.append(lecture_id)


def _reject(deps: EdgeDeps, item: dict[str, Any], resumes: int) -> None:
    lecture_id = str(item["lectureId"])
    reason = (
        f"The lecture could not be transcribed: it was started {resumes + 1} times and never finished. "
        "Upload it again, or split it into shorter parts."
    )
    ends = deps.store.retention_end(int(item.get("createdAt") or deps.store.now()))
    updated = deps.store.update_lecture(
        lecture_id,
        {"status": "rejected", "reason": reason, TTL_ATTRIBUTE: ends},
        expected_status="transcribing",
    )
    if updated is None:
        return
    log.error("sweeper: lecture %s rejected after %d resumes", lecture_id, resumes)
    if item.get("key"):
        deps.s3.delete_object(Bucket=deps.resources.bucket, Key=str(item["key"]))
    deps.quotas.release_lecture(str(item["owner"]), lecture_id)
    connection_id = updated.get("connectionId")
    if isinstance(connection_id, str) and connection_id:
        push(deps, connection_id, Lecture.from_item(updated))
