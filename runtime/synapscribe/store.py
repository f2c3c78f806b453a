"""DynamoDB state: connections, lectures and sessions, each in its own table.

Every read that a client can cause is scoped to its owner: another identity's item is
returned as None, exactly like an unknown id, so ids cannot be probed. Expired items (the TTL
attribute `expiresAt` in epoch seconds; DynamoDB deletes them lazily) are treated as gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from synapscribe.platform import PlatformConfig, load_platform
from synapscribe.settings import AwsResources

TTL_ATTRIBUTE = "expiresAt"

#: The key schema of each table (the CDK app and the local stack create them from this).
TABLE_KEYS = {
    "connections_table": "connectionId",
    "lectures_table": "lectureId",
    "sessions_table": "sessionId",
    # Per-owner quota ledgers and message-rate windows (quotas.py, edge/rates.py): a table of its
    # own, so counting a refused request never touches the state the request aimed at.
    "limits_table": "limitId",
}

#: The final-claim protocol's maps on a connection item (final_claim.py; docs/interfaces.md, "One
#: final message per question"): who holds each question's final, and when it is due.
FINALS_ATTRIBUTE = "finals"
DEADLINES_ATTRIBUTE = "answerDeadlines"

#: Questions parked while no GPU host is healthy (edge/warming.py): `{"until", "job"}` under the
#: same key as a final, handed to AgentCore by the sweeper once a host answers.
WARMING_ATTRIBUTE = "warmingJobs"

#: The sweeper's sparse global secondary index (edge/sweeper.py queries it instead of scanning):
#: only an item that may need sweeping carries `sweepDue`, and a GSI holds only the items that
#: have its key attribute (DynamoDB developer guide, "Take advantage of sparse indexes"). A
#: lecture carries its status while `pending` or `transcribing` (store writes it with the status);
#: a connection carries `answer` from its first answer deadline or parked question until the
#: sweeper finds both `answerDeadlines` and `warmingJobs` empty. The CDK app and provision.py create the index from this, on these
#: tables, projecting `projection` (None: every attribute).
SWEEP_ATTRIBUTE = "sweepDue"
SWEEP_INDEX = "sweep"
UNSETTLED = ("pending", "transcribing")
SWEEP_ANSWER = "answer"


@dataclass(frozen=True)
class SweepIndex:
    table: str  # a TABLE_KEYS field
    projection: tuple[str, ...] | None


SWEEP_INDEXES = (
    # The sweeper resumes, rejects or removes a lecture from the whole item.
    SweepIndex("lectures_table", None),
    # Only the deadlines and parked questions, all the sweeper reads of a connection: writes that
    # change no projected attribute and not the index key (the TTL, an owner's other fields) need
    # no index write.
    SweepIndex("connections_table", (DEADLINES_ATTRIBUTE, WARMING_ATTRIBUTE)),
)


class ConflictError(RuntimeError):
    """A conditional write lost a race (the caller may retry)."""


#: A session's stored history stays under this many bytes (serialized), well below DynamoDB's
#: 400 KB item limit with room for the session's other attributes. Under half the limit so that
#: moto, which counts the replaced history beside the new one during an update, accepts it too.
HISTORY_MAX_BYTES = 192 * 1024


def _turn_bytes(turn: Mapping[str, Any]) -> int:
    return len(
        json.dumps(from_dynamo(dict(turn)), ensure_ascii=False, separators=(",", ":"), default=str).encode()
    )


def _newest_within(history: list[Any], max_bytes: int) -> list[Any]:
    """The newest turns whose serialized sizes add up to at most `max_bytes` (oldest dropped first)."""
    total = 0
    kept = 0
    for turn in reversed(history):
        total += _turn_bytes(turn)
        if total > max_bytes:
            break
        kept += 1
    return history[len(history) - kept :]


def from_dynamo(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(from_dynamo(v) for v in value)
    return value


def to_dynamo(value: Any) -> Any:
    """Floats to Decimal (DynamoDB refuses floats), recursively; None-valued keys dropped."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    return value


class _Tables:
    """What the operations on every table share: the tables, the platform and the clock (set by
    Store, which is all of them at once)."""

    connections: Any
    lectures: Any
    sessions: Any
    limits: Any
    platform: PlatformConfig
    _clock: Any

    def now(self) -> int:
        return int(self._clock())

    def _live(self, item: Mapping[str, Any] | None, owner: str | None) -> dict[str, Any] | None:
        if item is None:
            return None
        if owner is not None and item.get("owner") != owner:
            return None
        expires = item.get(TTL_ATTRIBUTE)
        if expires is not None and int(expires) <= self.now():
            return None
        return cast(dict[str, Any], from_dynamo(dict(item)))

    def sweep_candidates(self, table: Any, due: str) -> Iterator[dict[str, Any]]:
        """The items of `table` whose `sweepDue` is `due`: a Query on the sparse index, page by
        page. A GSI is read eventually consistent only, so an item may be a moment stale: every
        action the sweeper takes on one is a conditional write."""
        kwargs: dict[str, Any] = {
            "IndexName": SWEEP_INDEX,
            "KeyConditionExpression": Key(SWEEP_ATTRIBUTE).eq(due),
        }
        while True:
            page = table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class ConnectionItems(_Tables):
    """The connections table: one item per WebSocket connection."""

    def put_connection(self, connection_id: str, owner: str) -> dict[str, Any]:
        now = self.now()
        item = {
            "connectionId": connection_id,
            "owner": owner,
            "connectedAt": now,
            FINALS_ATTRIBUTE: {},
            DEADLINES_ATTRIBUTE: {},
            TTL_ATTRIBUTE: now + self.platform.sessions.connection_ttl_seconds,
        }
        self.connections.put_item(Item=item)
        return item

    def unmark_connection(self, connection_id: str) -> bool:
        """Take a connection out of the sweeper's index once it has no answer deadline and no
        parked question left (on that condition: one recorded meanwhile keeps it in)."""
        return self.update_connection(
            connection_id,
            UpdateExpression="REMOVE #sd",
            ConditionExpression="attribute_exists(#sd) AND (attribute_not_exists(#d) OR size(#d) = :zero)"
            " AND (attribute_not_exists(#w) OR size(#w) = :zero)",
            ExpressionAttributeNames={
                "#sd": SWEEP_ATTRIBUTE,
                "#d": DEADLINES_ATTRIBUTE,
                "#w": WARMING_ATTRIBUTE,
            },
            ExpressionAttributeValues={":zero": 0},
        )

    def update_connection(self, connection_id: str, **update: Any) -> bool:
        """One conditional UpdateItem on a connection item: False when its condition fails."""
        try:
            self.connections.update_item(Key={"connectionId": connection_id}, **update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update_connection_maps(self, connection_id: str, **update: Any) -> bool:
        """`update_connection` for entries of `finals`/`answerDeadlines`: an item written before
        those maps existed gets them first (one more call, once per connection)."""
        try:
            return self.update_connection(connection_id, **update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException" or not self._add_maps(connection_id):
                raise
        return self.update_connection(connection_id, **update)

    def _add_maps(self, connection_id: str) -> bool:
        """Give a live connection item without `finals` or `answerDeadlines` its empty maps;
        False when it has both."""
        return self.update_connection(
            connection_id,
            UpdateExpression="SET #f = if_not_exists(#f, :empty), #d = if_not_exists(#d, :empty)",
            ConditionExpression="attribute_exists(connectionId) AND "
            "(attribute_not_exists(#f) OR attribute_not_exists(#d))",
            ExpressionAttributeNames={"#f": FINALS_ATTRIBUTE, "#d": DEADLINES_ATTRIBUTE},
            ExpressionAttributeValues={":empty": {}},
        )

    def get_connection(self, connection_id: str) -> dict[str, Any] | None:
        resp = self.connections.get_item(Key={"connectionId": connection_id}, ConsistentRead=True)
        return self._live(resp.get("Item"), None)

    def delete_connection(self, connection_id: str) -> None:
        self.connections.delete_item(Key={"connectionId": connection_id})


class LectureItems(_Tables):
    """The lectures table: one item per uploaded lecture."""

    def pending_lecture_item(
        self,
        lecture_id: str,
        owner: str,
        key: str,
        content_type: str,
        declared_bytes: int,
        connection_id: str | None,
        filename: str,
    ) -> dict[str, Any]:
        """A new pending lecture's item; it expires (TTL) unless its upload is validated in time."""
        now = self.now()
        return {
            "lectureId": lecture_id,
            "owner": owner,
            "status": "pending",
            SWEEP_ATTRIBUTE: "pending",
            "key": key,
            "contentType": content_type,
            "declaredBytes": declared_bytes,
            "connectionId": connection_id,
            "filename": filename,
            "createdAt": now,
            "updatedAt": now,
            TTL_ATTRIBUTE: now + self.platform.storage.pending_upload_seconds,
        }

    def create_pending_lecture(
        self,
        lecture_id: str,
        owner: str,
        key: str,
        content_type: str,
        declared_bytes: int,
        connection_id: str | None,
        filename: str,
    ) -> dict[str, Any]:
        item = self.pending_lecture_item(
            lecture_id, owner, key, content_type, declared_bytes, connection_id, filename
        )
        self.lectures.put_item(Item=to_dynamo(item), ConditionExpression=Attr("lectureId").not_exists())
        return item

    def retention_end(self, created_at: int) -> int:
        """When a validated lecture created at `created_at` expires (storage.retention_days), the
        same day the bucket's lifecycle removes its objects."""
        return int(created_at) + self.platform.storage.retention_days * 86400

    def add_lecture_session(self, lecture_id: str, session_id: str) -> bool:
        """Record a session on its lecture (deleteLecture ends it) as its newest (`listLectures`
        offers it to reopen); False when the lecture is gone."""
        try:
            self.lectures.update_item(
                Key={"lectureId": lecture_id},
                UpdateExpression="ADD sessionIds :s SET lastSessionId = :id",
                ConditionExpression=Attr("lectureId").exists(),
                ExpressionAttributeValues={":s": {session_id}, ":id": session_id},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete_lecture(self, lecture_id: str, owner: str) -> bool:
        """Delete an owner's lecture item; False when it was not there (or not theirs)."""
        try:
            self.lectures.delete_item(
                Key={"lectureId": lecture_id}, ConditionExpression=Attr("owner").eq(owner)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_lecture(self, lecture_id: str, owner: str | None) -> dict[str, Any] | None:
        """The lecture, or None when unknown or (with `owner`) another identity's."""
        resp = self.lectures.get_item(Key={"lectureId": lecture_id}, ConsistentRead=True)
        return self._live(resp.get("Item"), owner)

    def update_lecture(
        self, lecture_id: str, fields: Mapping[str, Any], expected_status: str | tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        """Set `fields` on a lecture; with `expected_status`, only if its status is one of them.

        Returns the updated item, or None when the lecture is missing or the condition failed
        (a re-delivered event finds the work already done).
        """
        values = {**fields, "updatedAt": self.now()}
        settled = "status" in fields and fields["status"] not in UNSETTLED
        if "status" in fields and not settled:
            values[SWEEP_ATTRIBUTE] = fields["status"]  # the sweeper's index follows the status
        names = {f"#f{i}": k for i, k in enumerate(values)}
        # ":v0"… would collide with the placeholders boto3 generates for ConditionExpression.
        exprs = {f":f{i}": to_dynamo(v) for i, v in enumerate(values.values())}
        update = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(values)))
        if settled:
            names["#sd"] = SWEEP_ATTRIBUTE
            update += " REMOVE #sd"  # ready or rejected: out of the sweeper's index
        condition = Attr("lectureId").exists()
        if expected_status is not None:
            allowed = (expected_status,) if isinstance(expected_status, str) else expected_status
            condition = condition & Attr("status").is_in(list(allowed))
        try:
            resp = self.lectures.update_item(
                Key={"lectureId": lecture_id},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=exprs,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return cast(dict[str, Any], from_dynamo(resp["Attributes"]))


class SessionItems(_Tables):
    """The sessions table: one item per question-and-answer session, with its history."""

    def delete_session(self, session_id: str) -> None:
        self.sessions.delete_item(Key={"sessionId": session_id})

    def create_session(
        self, session_id: str, owner: str, lecture_id: str, context_mode: str
    ) -> dict[str, Any]:
        now = self.now()
        item = {
            "sessionId": session_id,
            "owner": owner,
            "lectureId": lecture_id,
            "contextMode": context_mode,
            "history": [],
            "turns": 0,
            "createdAt": now,
            "updatedAt": now,
            TTL_ATTRIBUTE: now + self.platform.sessions.ttl_seconds,
        }
        self.sessions.put_item(Item=item, ConditionExpression=Attr("sessionId").not_exists())
        return item

    def get_session(self, session_id: str, owner: str | None) -> dict[str, Any] | None:
        resp = self.sessions.get_item(Key={"sessionId": session_id}, ConsistentRead=True)
        return self._live(resp.get("Item"), owner)

    def append_turn(
        self,
        session_id: str,
        turn: Mapping[str, Any],
        keep_turns: int = 50,
        retries: int = 5,
        keep_bytes: int = HISTORY_MAX_BYTES,
    ) -> dict[str, Any]:
        """Add one question/answer turn to a session's history (optimistic concurrency).

        The stored history keeps the last `keep_turns` turns, and of those only the newest that
        serialize to at most `keep_bytes` (DynamoDB items are capped at 400 KB); the context
        planner trims further by tokens for each request. A turn that alone exceeds `keep_bytes`
        is refused (ValueError) and nothing is written.
        """
        size = _turn_bytes(turn)
        if size > keep_bytes:
            raise ValueError(f"a turn of {size} bytes does not fit the history's {keep_bytes} bytes")
        for _ in range(retries):
            session = self.get_session(session_id, None)
            if session is None:
                raise KeyError(session_id)
            history = _newest_within([*session.get("history", []), dict(turn)][-keep_turns:], keep_bytes)
            now = self.now()
            try:
                resp = self.sessions.update_item(
                    Key={"sessionId": session_id},
                    UpdateExpression="SET history = :h, turns = :n, updatedAt = :u, #ttl = :e",
                    ConditionExpression=Attr("turns").eq(session["turns"]),
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":h": to_dynamo(history),
                        ":n": session["turns"] + 1,
                        ":u": now,
                        ":e": now + self.platform.sessions.ttl_seconds,
                    },
                    ReturnValues="ALL_NEW",
                )
                return cast(dict[str, Any], from_dynamo(resp["Attributes"]))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        raise ConflictError(f"session {session_id}: history kept changing under {retries} attempts")

    def end_session(self, session_id: str, owner: str) -> bool:
        """Delete an owner's live session; False when there was none to end."""
        if self.get_session(session_id, owner) is None:
            return False
        try:
            self.sessions.delete_item(
                Key={"sessionId": session_id}, ConditionExpression=Attr("owner").eq(owner)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


class Store(ConnectionItems, LectureItems, SessionItems):
    """The state tables' operations, one class per table, behind one object (the handlers and
    AgentCore pass one Store around). The limits table's are in quotas.py, ceilings.py and
    edge/rates.py."""

    def __init__(
        self,
        resources: AwsResources,
        platform: PlatformConfig | None = None,
        dynamodb: Any | None = None,
        clock: Any = time.time,
    ) -> None:
        self.resources = resources
        self.platform = platform or load_platform()
        self._db = dynamodb or boto3.resource("dynamodb")
        self.connections = self._db.Table(resources.connections_table)
        self.lectures = self._db.Table(resources.lectures_table)
        self.sessions = self._db.Table(resources.sessions_table)
        self.limits = self._db.Table(resources.limits_table)
        self._clock = clock
