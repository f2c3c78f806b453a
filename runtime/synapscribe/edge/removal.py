"""Removing a lecture and everything made from it: deleteLecture and the sweeper's clean-up.

Objects go first (the recording, the transcript, the segments), then the sessions, then the item,
then the owner's quota: a failure part-way leaves the item in place, so asking again finishes
the job (every step is idempotent), and no quota comes back while anything is still stored.
"""

from __future__ import annotations

import logging
from typing import Any

from synapscribe import keys
from synapscribe.edge.config import EdgeDeps

log = logging.getLogger(__name__)


def lecture_object_keys(d: EdgeDeps, lecture: dict[str, Any]) -> list[str]:
    """Every object stored for the lecture: its recording, transcript and segments."""
    lecture_id = str(lecture["lectureId"])
    found = [str(lecture["key"])] if lecture.get("key") else []
    found.append(str(lecture.get("transcriptKey") or keys.transcript_key(lecture_id, d.platform)))
    paginator = d.s3.get_paginator("list_objects_v2")
    prefix = keys.segments_prefix(lecture_id, d.platform)
    for page in paginator.paginate(Bucket=d.resources.bucket, Prefix=prefix):
        found.extend(obj["Key"] for obj in page.get("Contents", []))
    return found


def remove_lecture(d: EdgeDeps, lecture: dict[str, Any]) -> bool:
    """Delete the lecture's objects, sessions and item and give its quota back; False when the
    item was already gone (another removal won)."""
    lecture_id, owner = str(lecture["lectureId"]), str(lecture["owner"])
    object_keys = lecture_object_keys(d, lecture)
    # DeleteObjects takes at most 1000 keys a call; deleting a missing key is not an error.
    for start in range(0, len(object_keys), 1000):
        batch = [{"Key": k} for k in object_keys[start : start + 1000]]
        reply = d.s3.delete_objects(Bucket=d.resources.bucket, Delete={"Objects": batch, "Quiet": True})
        if reply.get("Errors"):
            raise RuntimeError(f"lecture {lecture_id}: objects not deleted: {reply['Errors'][:3]}")
    for session_id in lecture.get("sessionIds") or []:
        d.store.delete_session(str(session_id))
    removed = d.store.delete_lecture(lecture_id, owner)
    d.quotas.release_lecture(owner, lecture_id)
    log.info("lecture %s of %s removed (%d objects)", lecture_id, owner, len(object_keys))
    return removed
