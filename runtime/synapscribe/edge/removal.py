"""Removing a lecture and everything made from it: deleteLecture and the sweeper's clean-up.

Objects go first (the recording, the transcript, the segments, and its sessions' answer audio
under `responses/<session>/` and question clips, which `_query` records on the session as
`queryKeys`), then the sessions, then the item,
then the owner's quota: a failure part-way leaves the item in place, so asking again finishes
the job (every step is idempotent), and no quota comes back while anything is still stored.
"""

from __future__ import annotations

import logging
from typing import Any

from synapscribe import keys
from synapscribe.edge.config import EdgeDeps

log = logging.getLogger(__name__)


def lecture_object_keys(deps: EdgeDeps, lecture: dict[str, Any]) -> list[str]:
    """Every object stored for the lecture: its recording, transcript and segments."""
    lecture_id = str(lecture["lectureId"])
    found = [str(lecture["key"])] if lecture.get("key") else []
    found.append(str(lecture.get("transcriptKey") or keys.transcript_key(lecture_id, deps.platform)))
    paginator = deps.s3.get_paginator("list_objects_v2")
    prefix = keys.segments_prefix(lecture_id, deps.platform)
    for page in paginator.paginate(Bucket=deps.resources.bucket, Prefix=prefix):
        found.extend(obj["Key"] for obj in page.get("Contents", []))
    return found


#: The session item's set of the question clips (`queries/…`) asked in it.
QUERY_KEYS_ATTRIBUTE = "queryKeys"


def record_session_clip(deps: EdgeDeps, session_id: str, query_key: str) -> None:
    """Remember a question clip on its session, so deleting the lecture deletes the clip."""
    deps.store.sessions.update_item(
        Key={"sessionId": session_id},
        UpdateExpression="ADD #q :k",
        ConditionExpression="attribute_exists(sessionId)",
        ExpressionAttributeNames={"#q": QUERY_KEYS_ATTRIBUTE},
        ExpressionAttributeValues={":k": {query_key}},
    )


def session_object_keys(deps: EdgeDeps, session_ids: list[str]) -> list[str]:
    """The sessions' answer audio and question clips."""
    found: list[str] = []
    paginator = deps.s3.get_paginator("list_objects_v2")
    for session_id in session_ids:
        prefix = f"{deps.platform.storage.prefixes.responses}{session_id}/"
        for page in paginator.paginate(Bucket=deps.resources.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        item = deps.store.sessions.get_item(Key={"sessionId": session_id}, ConsistentRead=True).get("Item")
        found.extend(sorted(str(k) for k in (item or {}).get(QUERY_KEYS_ATTRIBUTE, ())))
    return found


def remove_lecture(deps: EdgeDeps, lecture: dict[str, Any]) -> bool:
    """Delete the lecture's objects, sessions and item and give its quota back; False when the
    item was already gone (another removal won)."""
    lecture_id, owner = str(lecture["lectureId"]), str(lecture["owner"])
    session_ids = [str(s) for s in lecture.get("sessionIds") or []]
    object_keys = lecture_object_keys(deps, lecture) + session_object_keys(deps, session_ids)
    # DeleteObjects takes at most 1000 keys a call; deleting a missing key is not an error.
    for start in range(0, len(object_keys), 1000):
        batch = [{"Key": k} for k in object_keys[start : start + 1000]]
        reply = deps.s3.delete_objects(Bucket=deps.resources.bucket, Delete={"Objects": batch, "Quiet": True})
        if reply.get("Errors"):
            raise RuntimeError(f"lecture {lecture_id}: objects not deleted: {reply['Errors'][:3]}")
    for session_id in session_ids:
        deps.store.delete_session(session_id)
    removed = deps.store.delete_lecture(lecture_id, owner)
    deps.quotas.release_lecture(owner, lecture_id)
    log.info("lecture %s of %s removed (%d objects)", lecture_id, owner, len(object_keys))
    return removed
