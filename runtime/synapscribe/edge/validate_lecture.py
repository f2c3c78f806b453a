"""The lecture validation Lambda: runs on S3 ObjectCreated events under `lectures/`.

For each new object it reads format and duration from the header with ranged GETs (the cost
does not grow with the file's size), plans the context mode, records the outcome on the
lecture item (a conditional update from `pending`, so a re-delivered event changes nothing),
pushes `lecture` to the uploading connection and, in transcript mode, hands transcription to
AgentCore. Anything rejected, and anything that was not created through createUpload, is deleted
so nothing downstream can use it, also when a POST policy is used again after the rejection.
An accepted upload is promoted: its pending tag (which the POST policy requires, and the
bucket's lifecycle rule removes within a day) becomes `validated`.

The transcription handoff never moves a lecture back: it is `transcribing` (and the client was
told so) before AgentCore is asked, a failed or timed-out handoff leaves it `transcribing` and
raises so Lambda retries, and the retried (or re-delivered) event asks again. AgentCore answers
at once and claims the lecture in DynamoDB, so asking twice never transcribes twice.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from synapscribe import keys
from synapscribe.audio.probe import ProbeRejection, probe
from synapscribe.contract import Lecture
from synapscribe.edge.affinity import post_routed
from synapscribe.edge.agentcore_client import (
    AgentCoreError,
    AgentCoreRejected,
    AgentCoreTimeout,
    transcription_request,
)
from synapscribe.edge.config import CachedDeps, EdgeDeps
from synapscribe.edge.push import push
from synapscribe.edge.s3_ranged import DEFAULT_MAX_BYTES, S3RangedFile
from synapscribe.planner import plan_lecture
from synapscribe.quotas import QuotaExceeded
from synapscribe.store import TTL_ATTRIBUTE

log = logging.getLogger(__name__)

#: The most one validation may read of an object (header, tail, tags), whatever its size.
PROBE_MAX_BYTES = DEFAULT_MAX_BYTES

deps = CachedDeps()
reset_deps = deps.reset


@dataclass
class Outcome:
    key: str
    outcome: str  # ready | transcribing | rejected | removed | duplicate | ignored | missing
    lecture_id: str | None = None
    reason: str | None = None
    bytes_read: int = 0
    requests: int = 0
    fetch_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "outcome": self.outcome,
            "lectureId": self.lecture_id,
            "reason": self.reason,
            "bytesRead": self.bytes_read,
            "requests": self.requests,
            "fetchMs": round(self.fetch_ms, 3),
        }


#: Handoffs that definitely failed (AgentCore unreachable, 5xx, busy) before the lecture is
#: rejected: Lambda tries an asynchronous S3 event three times in all.
MAX_HANDOFF_FAILURES = 3


class TranscriptionNotStarted(RuntimeError):
    """AgentCore could not be reached, was busy or did not answer in time; the lecture stays
    `transcribing` and a retried invocation (Lambda retries asynchronous S3 events) asks again."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, deps())


def handle(event: dict[str, Any], deps: EdgeDeps) -> dict[str, Any]:
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("not an S3 event: Records missing")
    return {"results": [validate_record(r, deps).as_dict() for r in records]}


def validate_record(record: dict[str, Any], deps: EdgeDeps) -> Outcome:
    s3info = record.get("s3") or {}
    bucket = (s3info.get("bucket") or {}).get("name")
    raw_key = (s3info.get("object") or {}).get("key")
    if not isinstance(raw_key, str) or not isinstance(bucket, str):
        raise ValueError("S3 record without bucket name or object key")
    key = urllib.parse.unquote_plus(raw_key)
    event_name = str(record.get("eventName", ""))
    prefix = deps.platform.storage.prefixes.lectures
    if (
        not event_name.startswith("ObjectCreated")
        or bucket != deps.resources.bucket
        or not key.startswith(prefix)
    ):
        return Outcome(key, "ignored")
    parsed = keys.parse_upload_key(key, deps.platform)
    item = None
    if parsed is not None and parsed[0] == "lecture":
        item = deps.store.get_lecture(parsed[2], parsed[1])
    if item is None or item.get("key") != key:
        # Not created through createUpload (or not this owner's): nobody may use it.
        _delete(deps, key)
        log.warning("removed %s: no pending lecture was created for this key", key)
        return Outcome(key, "removed", reason="no lecture was created for this key")
    lecture_id = str(item["lectureId"])

    try:
        head = deps.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        # Without s3:ListBucket (the deployed role has none) a missing object answers 403.
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (403, 404):
            log.info("%s is gone (already rejected or removed)", key)
            return Outcome(key, "missing", lecture_id)
        raise
    size = int(head["ContentLength"])
    etag = str(head.get("ETag", ""))

    if item["status"] != "pending":
        return _redelivered(deps, item, key, etag)

    limits = deps.platform.limits
    reader: S3RangedFile | None = None
    fields: dict[str, Any] = {"sizeBytes": size, "etag": etag}
    try:
        if size == 0:
            raise ProbeRejection("The file is empty (0 bytes). Upload the recording again.")
        if size > limits.lecture_max_bytes:
            raise ProbeRejection(
                f"The file is {size / 1_048_576:.1f} MB; the largest lecture accepted is "
                f"{limits.lecture_max_bytes / 1_048_576:g} MB. Compress it (for example MP3 at 64 kbit/s) "
                "or split it into parts."
            )
        reader = S3RangedFile(deps.s3, bucket, key, size, etag=etag or None, max_bytes=PROBE_MAX_BYTES)
        result = probe(reader, key.rsplit("/", 1)[-1])
        fields.update(format=result.format, durationSeconds=round(result.duration_seconds, 3))
        plan = plan_lecture(result.duration_seconds, deps.platform)
        if plan.mode is None:
            raise ProbeRejection(plan.reason or "The lecture cannot be served.")
        fields[TTL_ATTRIBUTE] = _settle(deps, item, size)
    except ProbeRejection as rejection:
        return _reject(deps, item, key, fields, rejection.reason, reader)

    read = _read_stats(reader)
    fields["contextMode"] = plan.mode
    # Promoted before it is marked accepted: a lecture never points at an object the pending
    # lifecycle rule will remove.
    _promote(deps, key)
    if plan.mode == "audio":
        updated = deps.store.update_lecture(
            lecture_id, {**fields, "status": "ready"}, expected_status="pending"
        )
        if updated is None:
            return Outcome(key, "duplicate", lecture_id, None, *read)
        _push(deps, updated)
        return Outcome(key, "ready", lecture_id, None, *read)

    updated = deps.store.update_lecture(
        lecture_id, {**fields, "status": "transcribing"}, expected_status="pending"
    )
    if updated is None:
        return Outcome(key, "duplicate", lecture_id, None, *read)
    # Told before AgentCore is asked, so the client can never see `ready` before `transcribing`.
    _push(deps, updated)
    return _hand_off(deps, updated, key, read)


def _settle(deps: EdgeDeps, item: dict[str, Any], size: int) -> int:
    """Charge the stored object's real size to its owner (the upload is no longer in progress);
    returns when the lecture now expires (storage.retention_days). ProbeRejection over the quota."""
    ends = deps.store.retention_end(int(item["createdAt"]))
    try:
        deps.quotas.settle_upload(str(item["owner"]), str(item["lectureId"]), size, ends)
    except QuotaExceeded as exc:
        raise ProbeRejection(f"The lecture was not kept: {exc.message}.") from None
    return ends


def _hand_off(deps: EdgeDeps, item: dict[str, Any], key: str, read: tuple[int, int, float]) -> Outcome:
    """Ask AgentCore to transcribe a `transcribing` lecture; never moves the lecture back."""
    lecture_id = str(item["lectureId"])
    try:
        # To the lecture's own host (edge/affinity.py): its items then stay where its questions go.
        post_routed(deps, lecture_id, *transcription_request(item))
    except AgentCoreRejected as exc:
        # A definite refusal (the lecture is unknown to AgentCore or not transcribable there):
        # asking again cannot help.
        log.error("lecture %s: AgentCore refused transcription: %s", lecture_id, exc)
        return _give_up(deps, item, key, read, f"it was refused ({exc.status})")
    except AgentCoreTimeout as exc:
        # AgentCore may well have taken it: the retry asks again and AgentCore's claim dedups.
        raise TranscriptionNotStarted(
            f"lecture {lecture_id}: transcription handoff unconfirmed: {exc}"
        ) from exc
    except AgentCoreError as exc:
        failures = int(item.get("handoffFailures") or 0) + 1
        if failures >= MAX_HANDOFF_FAILURES:
            log.error("lecture %s: transcription not started after %d tries: %s", lecture_id, failures, exc)
            return _give_up(deps, item, key, read, "the transcription service could not be reached")
        deps.store.update_lecture(lecture_id, {"handoffFailures": failures}, expected_status="transcribing")
        raise TranscriptionNotStarted(f"lecture {lecture_id}: transcription not started: {exc}") from exc
    # Remembered so a re-delivered event does not ask again (asking again would be harmless).
    deps.store.update_lecture(lecture_id, {"handoffAccepted": True}, expected_status="transcribing")
    return Outcome(key, "transcribing", lecture_id, None, *read)


def _give_up(
    deps: EdgeDeps, item: dict[str, Any], key: str, read: tuple[int, int, float], why: str
) -> Outcome:
    lecture_id = str(item["lectureId"])
    reason = f"The lecture could not be transcribed: {why}. Upload it again in a few minutes."
    updated = deps.store.update_lecture(
        lecture_id, {"status": "rejected", "reason": reason}, expected_status="transcribing"
    )
    if updated is None:  # finished or rejected meanwhile: its object is not ours to remove
        return Outcome(key, "duplicate", lecture_id, reason, *read)
    _delete(deps, key)
    deps.quotas.release_lecture(str(item["owner"]), lecture_id)
    _push(deps, updated)
    return Outcome(key, "rejected", lecture_id, reason, *read)


def _reject(
    deps: EdgeDeps,
    item: dict[str, Any],
    key: str,
    fields: dict[str, Any],
    reason: str,
    reader: S3RangedFile | None,
) -> Outcome:
    lecture_id = str(item["lectureId"])
    _delete(deps, key)
    # The item (its reason) stays as long as a kept lecture would; it holds no object or quota.
    ends = deps.store.retention_end(int(item["createdAt"]))
    updated = deps.store.update_lecture(
        lecture_id,
        {**fields, "status": "rejected", "reason": reason, TTL_ATTRIBUTE: ends},
        expected_status="pending",
    )
    read = _read_stats(reader)
    if updated is None:
        return Outcome(key, "duplicate", lecture_id, reason, *read)
    deps.quotas.release_lecture(str(item["owner"]), lecture_id)
    log.info("lecture %s rejected: %s", lecture_id, reason)
    _push(deps, updated)
    return Outcome(key, "rejected", lecture_id, reason, *read)


def _redelivered(deps: EdgeDeps, item: dict[str, Any], key: str, etag: str) -> Outcome:
    """An event for a lecture already validated: harmless, unless the object was replaced
    (a presigned POST can be reused until it expires) with bytes nobody has checked."""
    lecture_id = str(item["lectureId"])
    if item["status"] == "rejected":
        # The policy was POSTed again after the rejection: nothing may keep this file.
        _delete(deps, key)
        log.info("removed %s: its lecture %s was rejected", key, lecture_id)
        return Outcome(key, "removed", lecture_id, "its lecture was rejected")
    if not item.get("etag") or item.get("etag") == etag:
        if item["status"] in ("ready", "transcribing") and item.get("etag") == etag:
            _promote(deps, key)  # the same bytes POSTed again arrive tagged pending
        if (
            item["status"] == "transcribing"
            and item.get("contextMode") == "transcript"
            and not item.get("handoffAccepted")
        ):
            # The earlier handoff failed or went unanswered: ask again (AgentCore never works twice).
            return _hand_off(deps, item, key, (0, 0, 0.0))
        return Outcome(key, "duplicate", lecture_id)
    _delete(deps, key)
    reason = (
        "The lecture's file was replaced after it had been checked, so it was removed. "
        "Upload the recording again with a new upload."
    )
    updated = deps.store.update_lecture(
        lecture_id, {"status": "rejected", "reason": reason}, expected_status=("ready", "transcribing")
    )
    if updated is not None:
        deps.quotas.release_lecture(str(item["owner"]), lecture_id)
        _push(deps, updated)
    return Outcome(key, "rejected", lecture_id, reason)


def _read_stats(reader: S3RangedFile | None) -> tuple[int, int, float]:
    if reader is None:
        return 0, 0, 0.0
    return reader.bytes_fetched, reader.requests, reader.fetch_seconds * 1000


def _promote(deps: EdgeDeps, key: str) -> None:
    """Replace the upload's pending tag: the bucket's pending rule no longer removes it."""
    deps.s3.put_object_tagging(
        Bucket=deps.resources.bucket,
        Key=key,
        Tagging={"TagSet": [{"Key": keys.STATE_TAG, "Value": keys.VALIDATED}]},
    )


def _delete(deps: EdgeDeps, key: str) -> None:
    deps.s3.delete_object(Bucket=deps.resources.bucket, Key=key)


def _push(deps: EdgeDeps, item: dict[str, Any]) -> None:
    connection_id = item.get("connectionId")
    if isinstance(connection_id, str) and connection_id:
        push(deps, connection_id, Lecture.from_item(item))
