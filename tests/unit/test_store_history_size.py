"""A session's history stays under DynamoDB's 400 KB item limit however big its turns are (moto)."""

from __future__ import annotations

import json

import pytest
from synapscribe import store as store_module
from synapscribe.store import Store

OWNER = "eu-west-1:alice"


def big_turn(i: int, kib: int) -> dict[str, object]:
    # Non-ASCII text: DynamoDB counts UTF-8 bytes, so 2-byte characters make the turn twice as big.
    return {
        "requestId": f"req_{i:08d}",
        "question": f"Q{i} " + "é" * (kib * 512),
        "answer": f"A{i}.",
        "at": i,
    }


def history_bytes(history: list[dict[str, object]]) -> int:
    return sum(len(json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode()) for t in history)


def test_big_turns_are_trimmed_oldest_first_by_bytes(store: Store) -> None:
    store.create_session("ses_big", OWNER, "lec_x", "audio")
    for i in range(12):  # 12 turns of ~60 KiB: 720 KiB, far over the 400 KB item limit
        session = store.append_turn("ses_big", big_turn(i, 60))
    history = session["history"]
    assert history_bytes(history) <= store_module.HISTORY_MAX_BYTES
    assert [t["requestId"] for t in history] == [f"req_{i:08d}" for i in range(12 - len(history), 12)]
    assert len(history) >= 2
    older = big_turn(11 - len(history), 60)
    assert history_bytes([older, *history]) > store_module.HISTORY_MAX_BYTES  # nothing dropped needlessly
    stored = store.get_session("ses_big", OWNER)
    assert stored is not None and stored["history"] == history and stored["turns"] == 12


def test_small_turns_still_keep_the_last_fifty(store: Store) -> None:
    store.create_session("ses_small", OWNER, "lec_x", "audio")
    for i in range(53):
        session = store.append_turn("ses_small", {"requestId": f"r{i}", "question": "q?", "answer": "a."})
    assert [t["requestId"] for t in session["history"]] == [f"r{i}" for i in range(3, 53)]


def test_a_turn_bigger_than_the_whole_budget_is_refused_and_changes_nothing(store: Store) -> None:
    store.create_session("ses_huge", OWNER, "lec_x", "audio")
    store.append_turn("ses_huge", {"requestId": "r0", "question": "q?", "answer": "a."})
    with pytest.raises(ValueError, match="does not fit"):
        store.append_turn("ses_huge", big_turn(1, 400))
    stored = store.get_session("ses_huge", OWNER)
    assert stored is not None and [t["requestId"] for t in stored["history"]] == ["r0"]
    assert stored["turns"] == 1
