"""DynamoDB's per-item atomicity for moto, which lacks it.

DynamoDB checks a write's condition and applies the write as one step (a conditional write, a
transaction); the platform's claims, leases and quotas rely on that. moto's backend does neither
under threads: two threads can both pass a condition and both write. The local stack's moto server
and the in-process `mock_aws` of the tests serve requests on several threads, so without this a
race the platform wins on AWS is lost, now and then, on moto (a listed gap of the imitation; this
covers it). One lock for every write and read is coarse, but moto serves one process's test traffic.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

# Every DynamoDB backend operation that reads or writes items (reads too: a read between a
# transaction's item writes must not see half of it).
_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
)
_LOCK = threading.RLock()
_MARK = "_synapscribe_atomic"


def atomic_dynamodb_writes() -> None:
    """Serialize moto's DynamoDB item operations (idempotent; for this process)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _OPERATIONS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, _MARK, False):
            continue
        setattr(DynamoDBBackend, name, _locked(method))


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked
