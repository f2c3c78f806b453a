"""Which AgentCore host answers a lecture's questions: rendezvous (highest-random-weight) hashing.

A lecture's follow-ups are cheap only on the host whose model server already holds the lecture
(its items by uuid, its prefix in the KV cache: agentcore/media_refs.py); on any other host they
pay the lecture's whole encode and prefill again. Each live, ready host gets a weight per lecture
(a hash of the pair); the lecture goes to the host of the highest weight. When a host comes or
goes, only the lectures whose highest weight was (or becomes) that host move: every other
lecture's ranking among the remaining hosts is unchanged (Thaler and Ravishankar's rendezvous
hashing, the choice the field's prefix-aware routers make). A host at or over its in-flight
target is passed over for the next in rank, so one busy lecture does not queue behind its host.

Pure: the host list comes from the registry (synapscribe.host_registry), the caller posts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from synapscribe.host_registry import Host


def weight(lecture_id: str, host_id: str) -> int:
    """The pair's rendezvous weight: the first 8 bytes of a SHA-256 of both names."""
    digest = hashlib.sha256(f"{lecture_id}\x00{host_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def live(hosts: Iterable[Host], now: float, ttl_seconds: float) -> list[Host]:
    """Hosts that are ready and whose heartbeat is younger than the TTL."""
    return [h for h in hosts if h.ready and now - h.heartbeat_at < ttl_seconds]


def ranked(lecture_id: str, hosts: Iterable[Host]) -> list[Host]:
    """The hosts from the lecture's own host down (highest weight first; ties by id)."""
    return sorted(hosts, key=lambda h: (weight(lecture_id, h.host_id), h.host_id), reverse=True)


def owner(lecture_id: str, hosts: Sequence[Host]) -> Host | None:
    """The lecture's host among `hosts`, load aside (None when there is none)."""
    order = ranked(lecture_id, hosts)
    return order[0] if order else None


def candidates(lecture_id: str, hosts: Iterable[Host], now: float, ttl_seconds: float) -> list[Host]:
    """The hosts to try for the lecture, in order: live hosts by rank, those under their in-flight
    target first (a host over it is skipped, not dropped: if every host is busy the lecture's own
    host is still tried first). Empty when no host is live (the caller uses the balancer)."""
    order = ranked(lecture_id, live(hosts, now, ttl_seconds))
    return [h for h in order if h.in_flight < h.target] + [h for h in order if h.in_flight >= h.target]
