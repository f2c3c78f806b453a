"""The sweeper's sparse index (store.SWEEP_INDEX), on moto with the tables provision.py makes.

A global secondary index holds only the items that carry its key attribute (DynamoDB developer
guide, "Take advantage of sparse indexes"): a lecture is in it while `pending` or `transcribing`,
a connection from its first answer deadline until the sweeper finds none left. Settled lectures
and idle connections are not, so the sweeper's Query never reads them."""

from __future__ import annotations

from synapscribe import final_claim
from synapscribe.store import SWEEP_ANSWER, SWEEP_ATTRIBUTE, Store


def _due(store: Store, table: object, due: str) -> list[str]:
    key = "lectureId" if table is store.lectures else "connectionId"
    return sorted(str(item[key]) for item in store.sweep_candidates(table, due))


def _lecture(store: Store, lecture_id: str) -> None:
    store.create_pending_lecture(
        lecture_id, "alice", f"lectures/alice/{lecture_id}.mp3", "audio/mpeg", 10, None, "l.mp3"
    )


def test_a_lecture_is_in_the_index_exactly_while_unsettled(store: Store) -> None:
    for lecture_id in ("lec_p", "lec_t", "lec_r", "lec_x"):
        _lecture(store, lecture_id)
    assert _due(store, store.lectures, "pending") == ["lec_p", "lec_r", "lec_t", "lec_x"]
    store.update_lecture("lec_t", {"status": "transcribing", "contextMode": "transcript"})
    store.update_lecture("lec_r", {"status": "ready", "contextMode": "audio"})
    store.update_lecture("lec_x", {"status": "transcribing"})
    store.update_lecture(
        "lec_x", {"status": "rejected", "reason": "not audio"}, expected_status="transcribing"
    )
    assert _due(store, store.lectures, "pending") == ["lec_p"]
    assert _due(store, store.lectures, "transcribing") == ["lec_t"]
    # Settled items lose the key attribute, so they are in no partition of the index at all.
    for lecture_id in ("lec_r", "lec_x"):
        item = store.get_lecture(lecture_id, None)
        assert item is not None and SWEEP_ATTRIBUTE not in item
    # An update that does not touch the status leaves the item where it is.
    store.update_lecture("lec_t", {"sweepResumes": 1})
    assert _due(store, store.lectures, "transcribing") == ["lec_t"]
    # A failed conditional update changes nothing, the index key included.
    assert store.update_lecture("lec_p", {"status": "ready"}, expected_status="transcribing") is None
    assert _due(store, store.lectures, "pending") == ["lec_p"]


def test_a_connection_is_in_the_index_from_its_first_deadline(store: Store) -> None:
    store.put_connection("idle", "alice")
    store.put_connection("asking", "alice")
    store.put_connection("claimed", "alice")
    assert _due(store, store.connections, SWEEP_ANSWER) == []
    key = final_claim.key("q1", 1)
    assert final_claim.expect(store, "asking", key, {"until": 10, "owner": "alice", "requestId": "q1"})
    assert final_claim.claim(
        store, "claimed", key, "agentcore", {"until": 10, "owner": "alice", "requestId": "q1"}
    )
    assert final_claim.claim(store, "idle", final_claim.key("q2", 1), "edge")  # no deadline: not indexed
    assert _due(store, store.connections, SWEEP_ANSWER) == ["asking", "claimed"]
    # Projected: the deadlines, all the sweeper reads of a connection.
    by_id = {i["connectionId"]: i for i in store.sweep_candidates(store.connections, SWEEP_ANSWER)}
    assert set(by_id["asking"]["answerDeadlines"]) == {key}

    # Out only when no deadline is left: a live one keeps it in.
    assert store.unmark_connection("claimed") is False
    assert final_claim.settle(store, "claimed", key) is True
    assert store.unmark_connection("claimed") is True
    assert store.unmark_connection("claimed") is False  # already out
    assert _due(store, store.connections, SWEEP_ANSWER) == ["asking"]


def test_a_refused_hand_off_takes_the_connection_out_again(store: Store) -> None:
    store.put_connection("c1", "alice")
    before = store.get_connection("c1")
    k1, k2 = final_claim.key("q1", 1), final_claim.key("q2", 2)
    assert final_claim.expect(store, "c1", k1, {"until": 10})
    assert final_claim.expect(store, "c1", k2, {"until": 10})
    assert final_claim.withdraw(store, "c1", k2) is True  # k1 still due: stays in the index
    assert _due(store, store.connections, SWEEP_ANSWER) == ["c1"]
    assert final_claim.withdraw(store, "c1", k1) is True  # the last one: out, the item as it was
    assert _due(store, store.connections, SWEEP_ANSWER) == []
    assert store.get_connection("c1") == before
