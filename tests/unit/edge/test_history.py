"""Coming back after a reload: `listLectures` and `getSession` read only the caller's own items,
bounded by the quota ledger and the kept history, and change nothing."""

from __future__ import annotations

from synapscribe.edge.config import EdgeDeps

from .edge_support import one, table_snapshot


def _lecture(d: EdgeDeps, owner: str, name: str, status: str) -> str:
    """A lecture as createUpload leaves it (charged to the owner's ledger), then `status`."""
    lecture_id = f"lec_{owner}_{name}"
    item = d.store.pending_lecture_item(
        lecture_id, owner, f"lectures/{owner}/{lecture_id}.mp3", "audio/mpeg", 1000, None, "l.mp3"
    )
    d.quotas.reserve_lecture_upload(item)
    if status == "ready":
        d.store.update_lecture(
            lecture_id, {"status": "ready", "contextMode": "audio", "durationSeconds": 60.0}
        )
    return lecture_id


def test_lectures_are_listed_newest_first_with_their_last_session(
    deps: EdgeDeps, alice: str, bob: str
) -> None:
    ready = _lecture(deps, "alice", "a", "ready")
    pending = _lecture(deps, "alice", "b", "pending")
    deps.store.lectures.update_item(
        Key={"lectureId": pending},
        UpdateExpression="SET createdAt = createdAt + :one",
        ExpressionAttributeValues={":one": 1},
    )
    _lecture(deps, "bob", "c", "ready")
    session = one(deps, alice, {"action": "startSession", "lectureId": ready})["sessionId"]
    before = table_snapshot(deps)
    listed = one(deps, alice, {"action": "listLectures"})
    assert listed["type"] == "lectures"
    assert [(x["lectureId"], x["status"]) for x in listed["lectures"]] == [
        (pending, "pending"),
        (ready, "ready"),
    ]
    assert listed["lectures"][1] == {
        "lectureId": ready,
        "status": "ready",
        "filename": "l.mp3",
        "durationSeconds": 60.0,
        "contextMode": "audio",
        "createdAt": listed["lectures"][1]["createdAt"],
        "sessionId": session,
    }
    assert "sessionId" not in listed["lectures"][0]
    assert table_snapshot(deps) == before
    # Ended, the session is no longer offered.
    one(deps, alice, {"action": "endSession", "sessionId": session})
    assert "sessionId" not in one(deps, alice, {"action": "listLectures"})["lectures"][1]


def test_a_session_is_read_back_with_its_turns_by_its_owner_only(
    deps: EdgeDeps, alice: str, bob: str, session_id: str
) -> None:
    turn = {
        "requestId": "q-1",
        "question": "What is ATP?",
        "answer": "Energy.",
        "voice": True,
        "at": 1700000000,
    }
    deps.store.append_turn(session_id, turn)
    got = one(deps, alice, {"action": "getSession", "sessionId": session_id})
    assert got["type"] == "sessionTurns" and got["sessionId"] == session_id and got["contextMode"] == "audio"
    assert got["turns"] == [turn]
    refused = one(deps, bob, {"action": "getSession", "sessionId": session_id, "requestId": "r-1"})
    assert refused["code"] == "not_found" and session_id in refused["message"]
    assert one(deps, alice, {"action": "getSession", "sessionId": "nope!"})["code"] == "bad_request"


def test_a_turn_is_read_back_with_its_citations(deps: EdgeDeps, alice: str, session_id: str) -> None:
    """Kept as `[start, end]` pairs (AgentCore's `citations.stored`), read back as the answer had them."""
    cited = {
        "requestId": "q-2",
        "question": "Where?",
        "answer": "In the chloroplast.",
        "voice": False,
        "at": 1,
    }
    deps.store.append_turn(session_id, {**cited, "citations": [[0.0, 29.5], [30, 60]]})
    deps.store.append_turn(session_id, {**cited, "requestId": "q-3", "citations": []})
    turns = one(deps, alice, {"action": "getSession", "sessionId": session_id})["turns"]
    assert [t["citations"] for t in turns] == [
        [{"startSeconds": 0, "endSeconds": 29.5}, {"startSeconds": 30, "endSeconds": 60}],
        [],  # nothing in the lecture supports it: cited nothing
    ]


def test_lecture_audio_is_a_short_lived_get_of_the_own_ready_lecture(
    deps: EdgeDeps, alice: str, bob: str
) -> None:
    import requests

    ready = _lecture(deps, "alice", "a", "ready")
    key = f"lectures/alice/{ready}.mp3"
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=b"ID3 lecture bytes")
    got = one(deps, alice, {"action": "getLectureAudio", "lectureId": ready})
    assert got["type"] == "lectureAudio" and got["lectureId"] == ready and got["expiresIn"] == 300
    assert "X-Amz-Expires=300" in got["url"] and key in got["url"]
    assert requests.get(got["url"], timeout=10).content == b"ID3 lecture bytes"
    assert one(deps, bob, {"action": "getLectureAudio", "lectureId": ready})["code"] == "not_found"
    pending = _lecture(deps, "alice", "b", "pending")
    assert one(deps, alice, {"action": "getLectureAudio", "lectureId": pending})["code"] == "not_found"
