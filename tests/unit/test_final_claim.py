"""The final-claim protocol (final_claim.py) on a connection's item, on moto."""

from __future__ import annotations

import pytest
from synapscribe import final_claim
from synapscribe.store import DEADLINES_ATTRIBUTE, FINALS_ATTRIBUTE, Store


def test_first_claim_wins_and_every_later_one_loses(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {}  # type: ignore[index]
    key = final_claim.key("r1", 1000)
    assert final_claim.claim(store, "c1", key, "agentcore") is True
    assert final_claim.claim(store, "c1", key, "edge") is False
    assert final_claim.claim(store, "c1", key, "agentcore") is False
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "agentcore"}  # type: ignore[index]
    # Another query (a reused requestId at another time too) and another connection are separate.
    assert final_claim.claim(store, "c1", final_claim.key("r1", 2000), "edge") is True
    store.put_connection("c2", "eu-west-1:alice")
    assert final_claim.claim(store, "c2", key, "edge") is True


def test_a_gone_connection_loses_and_is_not_recreated(store: Store) -> None:
    assert final_claim.claim(store, "never", "r1@1", "agentcore") is False
    store.put_connection("c1", "eu-west-1:alice")
    store.delete_connection("c1")
    assert final_claim.claim(store, "c1", "r1@1", "edge") is False
    assert store.connections.get_item(Key={"connectionId": "c1"}).get("Item") is None


def test_an_item_written_before_finals_existed_is_claimed_once(store: Store) -> None:
    store.connections.put_item(Item={"connectionId": "old", "owner": "eu-west-1:alice"})
    assert final_claim.claim(store, "old", "r1@1", "edge") is True
    assert final_claim.claim(store, "old", "r1@1", "agentcore") is False
    assert store.get_connection("old")[FINALS_ATTRIBUTE] == {"r1@1": "edge"}  # type: ignore[index]


def test_claimant_must_be_named(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    with pytest.raises(ValueError, match="by must be one of edge, agentcore"):
        final_claim.claim(store, "c1", "r1@1", "lambda")
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {}  # type: ignore[index]


def _deadlines(store: Store, connection_id: str) -> dict[str, object]:
    item = store.get_connection(connection_id)
    assert item is not None
    return dict(item[DEADLINES_ATTRIBUTE])


def test_the_edges_expected_final_is_replaced_by_agentcores_claim(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    key = final_claim.key("r1", 1000)
    edge = {"until": 500, "owner": "eu-west-1:alice", "requestId": "r1"}
    assert final_claim.expect(store, "c1", key, edge) is True
    assert _deadlines(store, "c1") == {key: edge}
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {}  # type: ignore[index]  # nobody claimed
    agentcore = {**edge, "until": 900}
    assert final_claim.claim(store, "c1", key, "agentcore", agentcore) is True
    assert _deadlines(store, "c1") == {key: agentcore}
    # Once claimed, neither a second expectation nor a withdrawal touches AgentCore's deadline.
    assert final_claim.expect(store, "c1", key, edge) is False
    assert final_claim.withdraw(store, "c1", key) is False
    assert _deadlines(store, "c1") == {key: agentcore}


def test_the_edges_own_claim_clears_its_expected_final(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    key = final_claim.key("r1", 1000)
    assert final_claim.expect(store, "c1", key, {"until": 500, "owner": "eu-west-1:alice", "requestId": "r1"})
    assert final_claim.claim(store, "c1", key, "edge") is True
    assert _deadlines(store, "c1") == {}
    assert final_claim.take_over(store, "c1", key, 10**9) is False  # the sweeper has nothing to answer


def test_a_withdrawn_expectation_leaves_the_item_as_it_was(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    before = store.get_connection("c1")
    key = final_claim.key("r1", 1000)
    assert final_claim.expect(store, "c1", key, {"until": 500, "owner": "eu-west-1:alice", "requestId": "r1"})
    assert final_claim.withdraw(store, "c1", key) is True
    assert store.get_connection("c1") == before


def test_an_unclaimed_expectation_is_taken_over_once_overdue(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    key = final_claim.key("r1", 1000)
    assert final_claim.expect(store, "c1", key, {"until": 500, "owner": "eu-west-1:alice", "requestId": "r1"})
    assert final_claim.take_over(store, "c1", key, 500) is False  # not overdue yet
    assert final_claim.take_over(store, "c1", key, 501) is True
    assert final_claim.take_over(store, "c1", key, 501) is False
    assert final_claim.claim(store, "c1", key, "agentcore", {"until": 900}) is False  # AgentCore came late
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "sweeper"}  # type: ignore[index]


def test_expecting_a_final_needs_a_live_connection(store: Store) -> None:
    assert final_claim.expect(store, "never", "r1@1", {"until": 1}) is False
    assert final_claim.withdraw(store, "never", "r1@1") is False
    assert store.connections.get_item(Key={"connectionId": "never"}).get("Item") is None
    # An item written before the maps existed gets them on its first expectation.
    store.connections.put_item(Item={"connectionId": "old", "owner": "eu-west-1:alice"})
    assert final_claim.expect(store, "old", "r1@1", {"until": 1}) is True
    assert _deadlines(store, "old") == {"r1@1": {"until": 1}}


def test_a_key_gives_back_its_request_id_and_tells_receipts_apart() -> None:
    # The sweeper names an overdue question by its key's requestId when the record lacks one.
    assert final_claim.request_id_of(final_claim.key("r1", 1000)) == "r1"
    assert final_claim.request_id_of(final_claim.key("a@b", 7)) == "a@b"
    assert final_claim.key("r1", 1000) != final_claim.key("r1", 1001)
