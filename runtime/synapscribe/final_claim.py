"""Exactly one final message (`answer` or `error`) per question: the final-claim protocol.

The protocol is described once, in docs/interfaces.md ("One final message per question"). Its
parties call these operations: the WebSocket handler (`expect` before its hand-off, `withdraw` when
AgentCore refused it, `claim` as "edge" when the hand-off timed out), the query pipeline (`claim`
as "agentcore" with a deadline before it pushes anything, `settle` just before its final), the
sweeper (`take_over` past a deadline), warming (`claim` as "sweeper" for a parked question past
its bound) and the edge's cancel of a parked question (`claim` as "edge"). Each is one conditional write on the question's connection item (store.py's
`finals` and `answerDeadlines` maps), so exactly one party ever wins a question's final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synapscribe.platform import PlatformConfig
from synapscribe.store import (
    DEADLINES_ATTRIBUTE,
    FINALS_ATTRIBUTE,
    SWEEP_ANSWER,
    SWEEP_ATTRIBUTE,
    Store,
    to_dynamo,
)

#: Who may hold a question's final.
FINAL_BY = ("edge", "agentcore", "sweeper")

#: The condition shared by `expect`, `claim` and `withdraw`: the connection is there and nobody
#: holds the question's final yet.
_UNCLAIMED = "attribute_exists(connectionId) AND attribute_not_exists(#f.#r)"


def key(request_id: str, received_at_ms: int) -> str:
    """One question's key in `finals` (and its job slot's, quotas.py): its requestId and the edge's
    receipt time (both are in the QueryJob), so a client that reuses a requestId still gets an
    answer to its next question."""
    return f"{request_id}@{received_at_ms}"


def request_id_of(question_key: str) -> str:
    """The requestId part of `key`'s result."""
    return question_key.rsplit("@", 1)[0]


def deadline(store: Store, platform: PlatformConfig, owner: str, request_id: str) -> dict[str, Any]:
    """When a question's final is due, as `expect` and AgentCore's `claim` record it: within the
    job slot's lease (quotas.job_lease_seconds), past which the sweeper answers it."""
    return {
        "until": store.now() + platform.quotas.job_lease_seconds,
        "owner": owner,
        "requestId": request_id,
    }


def expect(store: Store, connection_id: str, question: str, due: Mapping[str, Any]) -> bool:
    """The edge is about to hand the question over: record its deadline `due`. False when the
    connection is gone or the final is already claimed."""
    return store.update_connection_maps(
        connection_id,
        UpdateExpression="SET #d.#r = :rec, #sd = :due",
        ConditionExpression=_UNCLAIMED,
        ExpressionAttributeNames=_names(question, **{"#sd": SWEEP_ATTRIBUTE}),
        ExpressionAttributeValues={":rec": to_dynamo(dict(due)), ":due": SWEEP_ANSWER},
    )


def withdraw(store: Store, connection_id: str, question: str) -> bool:
    """AgentCore refused the hand-off: the deadline `expect` recorded goes, unless someone claimed
    the final meanwhile; the connection leaves the sweeper's index with its only deadline."""
    if store.update_connection(
        connection_id,
        UpdateExpression="REMOVE #d.#r, #sd",
        ConditionExpression=f"{_UNCLAIMED} AND attribute_exists(#d.#r) AND size(#d) = :one",
        ExpressionAttributeNames=_names(question, **{"#sd": SWEEP_ATTRIBUTE}),
        ExpressionAttributeValues={":one": 1},
    ):
        return True
    return store.update_connection(
        connection_id,
        UpdateExpression="REMOVE #d.#r",
        ConditionExpression=_UNCLAIMED,
        ExpressionAttributeNames=_names(question),
    )


def claim(
    store: Store, connection_id: str, question: str, by: str, due: Mapping[str, Any] | None = None
) -> bool:
    """Claim the question's final for `by`: True for the first claimant only, False for a later
    one and when the connection is gone. With `due` (AgentCore's) the same write records its
    deadline; without it (the edge, the sweeper: they send at once) the deadline goes."""
    if by not in FINAL_BY:
        raise ValueError(f"by must be one of {', '.join(FINAL_BY)}, not {by!r}")
    names = _names(question)
    values: dict[str, Any] = {":by": by}
    if due is not None:
        names["#sd"] = SWEEP_ATTRIBUTE
        values.update({":rec": to_dynamo(dict(due)), ":due": SWEEP_ANSWER})
        update = "SET #f.#r = :by, #d.#r = :rec, #sd = :due"
    else:
        update = "SET #f.#r = :by REMOVE #d.#r"
    return store.update_connection_maps(
        connection_id,
        UpdateExpression=update,
        ConditionExpression=_UNCLAIMED,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def settle(store: Store, connection_id: str, question: str) -> bool:
    """AgentCore is about to send its final: its deadline goes, on condition that it still holds
    the claim. False when the sweeper took it over or the connection is gone: send nothing then."""
    return store.update_connection(
        connection_id,
        UpdateExpression="REMOVE #d.#r",
        ConditionExpression="#f.#r = :agentcore AND attribute_exists(#d.#r)",
        ExpressionAttributeNames=_names(question),
        ExpressionAttributeValues={":agentcore": "agentcore"},
    )


def take_over(store: Store, connection_id: str, question: str, now: int) -> bool:
    """The sweeper claims an overdue final (AgentCore's, or a hand-off nobody claimed) and its
    deadline goes, on condition that the deadline is still there and before `now`: True for one
    sweeper run at most, and never after AgentCore settled."""
    return store.update_connection(
        connection_id,
        UpdateExpression="SET #f.#r = :sweeper REMOVE #d.#r",
        ConditionExpression="(attribute_not_exists(#f.#r) OR #f.#r = :agentcore) AND #d.#r.#u < :now",
        ExpressionAttributeNames=_names(question, **{"#u": "until"}),
        ExpressionAttributeValues={":agentcore": "agentcore", ":sweeper": "sweeper", ":now": now},
    )


def _names(question: str, **more: str) -> dict[str, str]:
    return {"#f": FINALS_ATTRIBUTE, "#d": DEADLINES_ATTRIBUTE, "#r": question, **more}
