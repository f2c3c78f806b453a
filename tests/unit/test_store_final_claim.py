"""The one-final claim on a connection's item (store.claim_final), on moto."""

from __future__ import annotations

import pytest
from synapscribe.store import FINALS_ATTRIBUTE, Store, final_claim_key


def test_first_claim_wins_and_every_later_one_loses(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {}  # type: ignore[index]
    key = final_claim_key("r1", 1000)
    assert store.claim_final("c1", key, "agentcore") is True
    assert store.claim_final("c1", key, "edge") is False
    assert store.claim_final("c1", key, "agentcore") is False
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {key: "agentcore"}  # type: ignore[index]
    # Another query (a reused requestId at another time too) and another connection are separate.
    assert store.claim_final("c1", final_claim_key("r1", 2000), "edge") is True
    store.put_connection("c2", "eu-west-1:alice")
    assert store.claim_final("c2", key, "edge") is True


def test_a_gone_connection_loses_and_is_not_recreated(store: Store) -> None:
    assert store.claim_final("never", "r1@1", "agentcore") is False
    store.put_connection("c1", "eu-west-1:alice")
    store.delete_connection("c1")
    assert store.claim_final("c1", "r1@1", "edge") is False
    assert store.connections.get_item(Key={"connectionId": "c1"}).get("Item") is None


def test_an_item_written_before_finals_existed_is_claimed_once(store: Store) -> None:
    store.connections.put_item(Item={"connectionId": "old", "owner": "eu-west-1:alice"})
    assert store.claim_final("old", "r1@1", "edge") is True
    assert store.claim_final("old", "r1@1", "agentcore") is False
    assert store.get_connection("old")[FINALS_ATTRIBUTE] == {"r1@1": "edge"}  # type: ignore[index]


def test_claimant_must_be_named(store: Store) -> None:
    store.put_connection("c1", "eu-west-1:alice")
    with pytest.raises(ValueError, match="by must be one of edge, agentcore"):
        store.claim_final("c1", "r1@1", "lambda")
    assert store.get_connection("c1")[FINALS_ATTRIBUTE] == {}  # type: ignore[index]
