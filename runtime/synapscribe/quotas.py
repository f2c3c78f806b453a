"""Per-owner quotas, held atomically in the limits table (store.TABLE_KEYS `limits_table`).

Each owner has one ledger item (`limitId` = `owner#<identity>`) with what it holds now:

- `lectures`: lecture id -> {`b`: bytes charged, `e`: when the lecture's item expires}
- `uploads`: upload id -> when the upload URL's grace ends (uploads in progress)
- `jobs`: job key -> when the job's lease ends (questions handed to AgentCore)
- `qWindow`/`qCount`: questions asked in the current minute
- `version`: bumped by every change

Every change reads the ledger, drops the entries whose time has passed (so a lecture that
expired, an upload that never came or a job whose AgentCore died give their share back without
anyone calling), checks the limits and writes it back on condition that `version` is unchanged;
a lost race is retried on the fresh ledger. Two requests at a limit therefore never both pass.
A lecture upload's ledger write and its pending lecture item go in one transaction, so over a
quota nothing at all is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from synapscribe.platform import PlatformConfig, Quotas
from synapscribe.store import TTL_ATTRIBUTE, ConflictError, Store, from_dynamo, to_dynamo

OWNER_PREFIX = "owner#"
#: Attempts at a ledger change under contention (each is one read and one conditional write).
MAX_ATTEMPTS = 8


class QuotaExceeded(Exception):
    """A request would take an owner over one of its quotas; nothing was written."""

    def __init__(self, quota: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.message = message


@dataclass
class Ledger:
    """One owner's holdings, with expired entries already dropped (`dropped` says they were)."""

    lectures: dict[str, dict[str, int]] = field(default_factory=dict)
    uploads: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    q_window: int = 0
    q_count: int = 0
    version: int = 0
    dropped: bool = False

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None, now: int) -> Ledger:
        if item is None:
            return cls()
        raw = from_dynamo(dict(item))
        lectures = {k: v for k, v in raw.get("lectures", {}).items() if int(v["e"]) > now}
        uploads = {k: int(v) for k, v in raw.get("uploads", {}).items() if int(v) > now}
        jobs = {k: int(v) for k, v in raw.get("jobs", {}).items() if int(v) > now}
        dropped = (len(lectures), len(uploads), len(jobs)) != (
            len(raw.get("lectures", {})),
            len(raw.get("uploads", {})),
            len(raw.get("jobs", {})),
        )
        return cls(
            lectures,
            uploads,
            jobs,
            int(raw.get("qWindow", 0)),
            int(raw.get("qCount", 0)),
            int(raw.get("version", 0)),
            dropped,
        )

    @property
    def stored_bytes(self) -> int:
        return sum(int(v["b"]) for v in self.lectures.values())

    def attributes(self) -> dict[str, Any]:
        return {
            "lectures": self.lectures,
            "uploads": self.uploads,
            "jobs": self.jobs,
            "qWindow": self.q_window,
            "qCount": self.q_count,
        }

    def expires_at(self, now: int) -> int:
        """The ledger item's own TTL: after everything in it has ended (a day at least)."""
        ends = [int(v["e"]) for v in self.lectures.values()] + [*self.uploads.values(), *self.jobs.values()]
        return max([now + 86400, *ends])


#: A change to a ledger: mutates it (raising QuotaExceeded to refuse) and says whether to write.
Change = Callable[[Ledger], bool]


class OwnerQuotas:
    """The quota operations the edge, the validator, the sweeper and AgentCore perform."""

    def __init__(self, store: Store, platform: PlatformConfig | None = None) -> None:
        self.store = store
        self.table = store.limits
        self.platform = platform or store.platform

    @property
    def limits(self) -> Quotas:
        return self.platform.quotas

    # ------------------------------------------------------------------ charges

    def reserve_lecture_upload(self, lecture_item: Mapping[str, Any]) -> None:
        """Charge a new pending lecture (one lecture, its declared bytes, one upload in progress)
        and put its item, in one transaction."""
        lecture_id, declared = str(lecture_item["lectureId"]), int(lecture_item["declaredBytes"])
        ends = int(lecture_item[TTL_ATTRIBUTE])

        def change(ledger: Ledger) -> bool:
            self._check_lectures(ledger, 1)
            self._check_bytes(ledger, declared)
            self._check_uploads(ledger)
            ledger.lectures[lecture_id] = {"b": declared, "e": ends}
            ledger.uploads[lecture_id] = ends
            return True

        put = {
            "Put": {
                "TableName": self.store.lectures.name,
                "Item": to_dynamo(dict(lecture_item)),
                "ConditionExpression": "attribute_not_exists(lectureId)",
            }
        }
        self._apply(str(lecture_item["owner"]), change, extra=put)

    def reserve_query_upload(self, owner: str, upload_id: str) -> None:
        """Charge one upload in progress for a query clip (until its URL expires, or it is used)."""
        ends = self.store.now() + self.platform.limits.upload_url_expiry_seconds + 60

        def change(ledger: Ledger) -> bool:
            self._check_uploads(ledger)
            ledger.uploads[upload_id] = ends
            return True

        self._apply(owner, change)

    def start_question(self, owner: str, job_key: str) -> None:
        """Count a question in this minute and hold a job slot until `finish_job` (or its lease)."""
        now = self.store.now()
        window = now - now % 60
        lease = now + self.limits.job_lease_seconds

        def change(ledger: Ledger) -> bool:
            count = ledger.q_count if ledger.q_window == window else 0
            if count >= self.limits.questions_per_minute:
                raise QuotaExceeded(
                    "questions_per_minute",
                    self.limits.questions_per_minute,
                    f"quota questions_per_minute reached: at most {self.limits.questions_per_minute} "
                    f"questions a minute per identity; ask again in {window + 60 - now} s",
                )
            if len(ledger.jobs) >= self.limits.jobs_in_flight:
                raise QuotaExceeded(
                    "jobs_in_flight",
                    self.limits.jobs_in_flight,
                    f"quota jobs_in_flight reached: at most {self.limits.jobs_in_flight} questions "
                    "per identity are answered at once; wait for an answer before asking again",
                )
            ledger.q_window, ledger.q_count = window, count + 1
            ledger.jobs[job_key] = lease
            return True

        self._apply(owner, change)

    def settle_upload(self, owner: str, lecture_id: str, actual_bytes: int, ends: int) -> bool:
        """A lecture's upload was validated: it no longer counts as in progress, its bytes are
        the stored object's and it lasts until `ends`. QuotaExceeded when the object is larger
        than declared and the difference does not fit; False when the lecture is not charged
        (deleted or expired meanwhile)."""
        found = True

        def change(ledger: Ledger) -> bool:
            nonlocal found
            held = ledger.lectures.get(lecture_id)
            if held is None:
                found = False
                return ledger.uploads.pop(lecture_id, None) is not None
            grown = actual_bytes - int(held["b"])
            if grown > 0:
                self._check_bytes(ledger, grown)
            ledger.uploads.pop(lecture_id, None)
            ledger.lectures[lecture_id] = {"b": actual_bytes, "e": ends}
            return True

        self._apply(owner, change)
        return found

    # ------------------------------------------------------------------ releases

    def release_lecture(self, owner: str, lecture_id: str) -> None:
        """The lecture was deleted, rejected or expired: its lecture, bytes and upload come back."""

        def change(ledger: Ledger) -> bool:
            had = ledger.lectures.pop(lecture_id, None) is not None
            return ledger.uploads.pop(lecture_id, None) is not None or had

        self._apply(owner, change)

    def release_upload(self, owner: str, upload_id: str) -> None:
        """A query clip was used (or given up): its upload slot comes back."""
        self._apply(owner, lambda ledger: ledger.uploads.pop(upload_id, None) is not None)

    def finish_job(self, owner: str, job_key: str) -> None:
        """The question was answered (or failed): its job slot comes back."""
        self._apply(owner, lambda ledger: ledger.jobs.pop(job_key, None) is not None)

    def ledger(self, owner: str) -> Ledger:
        """The owner's current holdings (expired entries left out)."""
        return Ledger.from_item(self._read(owner), self.store.now())

    # ------------------------------------------------------------------ checks

    def _check_lectures(self, ledger: Ledger, more: int) -> None:
        limit = self.limits.lectures
        if len(ledger.lectures) + more > limit:
            raise QuotaExceeded(
                "lectures",
                limit,
                f"quota lectures reached: at most {limit} lectures per identity; delete one "
                "(deleteLecture) or wait for one to expire",
            )

    def _check_bytes(self, ledger: Ledger, more: int) -> None:
        limit = self.limits.stored_bytes
        if ledger.stored_bytes + more > limit:
            raise QuotaExceeded(
                "stored_bytes",
                limit,
                f"quota stored_bytes reached: at most {limit} bytes ({limit / 1_048_576:g} MB) of lectures "
                f"per identity; {ledger.stored_bytes} are stored and {more} more were asked for; delete a "
                "lecture (deleteLecture) first",
            )

    def _check_uploads(self, ledger: Ledger) -> None:
        limit = self.limits.uploads_in_progress
        if len(ledger.uploads) >= limit:
            raise QuotaExceeded(
                "uploads_in_progress",
                limit,
                f"quota uploads_in_progress reached: at most {limit} uploads per identity at once; "
                "finish (or let expire) the uploads already asked for",
            )

    # ------------------------------------------------------------------ storage

    def _key(self, owner: str) -> dict[str, str]:
        return {"limitId": OWNER_PREFIX + owner}

    def _read(self, owner: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key=self._key(owner), ConsistentRead=True).get(
            "Item"
        )
        return item

    def _apply(self, owner: str, change: Change, extra: dict[str, Any] | None = None) -> None:
        """Read, change and write the ledger on condition of its version; retried when raced."""
        for _ in range(MAX_ATTEMPTS):
            now = self.store.now()
            ledger = Ledger.from_item(self._read(owner), now)
            version = ledger.version
            if not change(ledger) and not ledger.dropped and extra is None:
                return
            if self._write(owner, ledger, version, now, extra):
                return
        raise ConflictError(f"the quota ledger of {owner} kept changing under {MAX_ATTEMPTS} attempts")

    def _write(
        self, owner: str, ledger: Ledger, version: int, now: int, extra: dict[str, Any] | None
    ) -> bool:
        values = {**ledger.attributes(), "version": version + 1, TTL_ATTRIBUTE: ledger.expires_at(now)}
        names = {f"#a{i}": k for i, k in enumerate(values)}
        exprs = {f":a{i}": to_dynamo(v) for i, v in enumerate(values.values())}
        if version > 0:
            names["#ver"], exprs[":was"] = "version", version
        update = {
            "TableName": self.table.name,
            "Key": self._key(owner),
            "UpdateExpression": "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values))),
            "ConditionExpression": "#ver = :was" if version > 0 else "attribute_not_exists(limitId)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": exprs,
        }
        client = self.table.meta.client
        try:
            if extra is None:
                client.update_item(**update)
            else:
                client.transact_write_items(TransactItems=[{"Update": update}, extra])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return False
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    raise ConflictError("the item to create with the charge exists already") from None
            raise
        return True
