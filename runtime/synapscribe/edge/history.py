"""Coming back to a conversation: `listLectures` (the caller's lectures with their newest session)
and `getSession` (a session's turns); and `getLectureAudio`, the link a citation plays. Both read only the caller's own items, and both are bounded:
the lectures are the owner's quota ledger's (at most `quotas.lectures`), the turns the session's
kept history (at most `sessions.keep_turns`)."""

from __future__ import annotations

from typing import Any

from synapscribe.contract import (
    Citation,
    ContractError,
    ErrorCode,
    GetLectureAudio,
    GetSession,
    LectureAudio,
    Lectures,
    LectureSummary,
    ListLectures,
    SessionTurns,
    Turn,
)
from synapscribe.edge.config import EdgeDeps
from synapscribe.store import TTL_ATTRIBUTE


def _summary(item: dict[str, Any], deps: EdgeDeps, owner: str) -> LectureSummary:
    status = item["status"]
    last = item.get("lastSessionId")
    live = last is not None and status == "ready" and deps.store.get_session(str(last), owner) is not None
    return LectureSummary(
        lectureId=item["lectureId"],
        status=status,
        filename=item.get("filename"),
        durationSeconds=float(item["durationSeconds"]) if item.get("durationSeconds") is not None else None,
        contextMode=item.get("contextMode") if status == "ready" else None,
        createdAt=int(item["createdAt"]) if item.get("createdAt") is not None else None,
        sessionId=str(last) if live else None,
    )


def list_lectures(msg: ListLectures, owner: str, connection_id: str, deps: EdgeDeps) -> Lectures:
    items = [deps.store.get_lecture(lecture_id, owner) for lecture_id in deps.quotas.ledger(owner).lectures]
    found = [i for i in items if i is not None and i.get("status") != "rejected"]
    found.sort(key=lambda i: (int(i.get("createdAt") or 0), str(i["lectureId"])), reverse=True)
    return Lectures(lectures=[_summary(i, deps, owner) for i in found])


def get_session(msg: GetSession, owner: str, connection_id: str, deps: EdgeDeps) -> SessionTurns:
    session = deps.store.get_session(msg.sessionId, owner)
    if session is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"session {msg.sessionId!r} not found")
    return SessionTurns(
        sessionId=msg.sessionId,
        lectureId=session["lectureId"],
        contextMode=session["contextMode"],
        expiresAt=int(session[TTL_ATTRIBUTE]),
        turns=[
            Turn(
                requestId=str(t["requestId"]),
                question=str(t.get("question", "")),
                answer=str(t.get("answer", "")),
                voice=bool(t.get("voice")),
                at=int(t.get("at") or 0),
                citations=_citations(t),
            )
            for t in session.get("history") or []
        ],
    )


def _citations(turn: dict[str, Any]) -> list[Citation] | None:
    """A kept turn's citations, stored as `[start, end]` pairs (agentcore/citations.py `stored`)."""
    pairs = turn.get("citations")
    if pairs is None:
        return None
    return [Citation(startSeconds=float(start), endSeconds=float(end)) for start, end in pairs]


#: A citation's link to the lecture's recording lives at most this long (a student clicks it now).
LECTURE_AUDIO_SECONDS = 300


def get_lecture_audio(msg: GetLectureAudio, owner: str, connection_id: str, deps: EdgeDeps) -> LectureAudio:
    lecture = deps.store.get_lecture(msg.lectureId, owner)
    if lecture is None or lecture.get("status") != "ready":
        raise ContractError(ErrorCode.NOT_FOUND, f"lecture {msg.lectureId!r} not found (or not ready)")
    expires = min(LECTURE_AUDIO_SECONDS, deps.platform.limits.response_url_expiry_seconds)
    url = deps.s3.generate_presigned_url(
        "get_object", Params={"Bucket": deps.resources.bucket, "Key": lecture["key"]}, ExpiresIn=expires
    )
    return LectureAudio(lectureId=msg.lectureId, url=url, expiresIn=expires)
