"""Lecture-affinity routing (edge/routing.py): rendezvous hashing over the live, ready hosts."""

from __future__ import annotations

from collections import Counter

from synapscribe.edge import routing
from synapscribe.host_registry import Host

NOW = 1_000_000.0
TTL = 30.0
LECTURES = [f"lec_{n:04d}" for n in range(2000)]


def host(name: str, *, ready: bool = True, in_flight: int = 0, age: float = 1.0) -> Host:
    return Host(name, f"http://{name}:5000", ready, in_flight, 8, NOW - age)


def owners(hosts: list[Host]) -> dict[str, str]:
    out = {}
    for lecture in LECTURES:
        chosen = routing.candidates(lecture, hosts, NOW, TTL)
        out[lecture] = chosen[0].host_id
    return out


def test_lectures_spread_over_the_hosts() -> None:
    hosts = [host(f"h{n}") for n in range(4)]
    counts = Counter(owners(hosts).values())
    assert set(counts) == {"h0", "h1", "h2", "h3"}
    assert min(counts.values()) > len(LECTURES) / 4 * 0.8, counts


def test_scale_out_moves_only_the_lectures_the_new_host_takes() -> None:
    before = owners([host(f"h{n}") for n in range(4)])
    after = owners([host(f"h{n}") for n in range(5)])
    moved = {lec for lec in LECTURES if before[lec] != after[lec]}
    assert moved and all(after[lec] == "h4" for lec in moved)
    assert 0.1 < len(moved) / len(LECTURES) < 0.3  # about a fifth


def test_scale_in_moves_only_the_lectures_of_the_host_that_went() -> None:
    before = owners([host(f"h{n}") for n in range(4)])
    after = owners([host(f"h{n}") for n in (0, 1, 3)])
    moved = {lec for lec in LECTURES if before[lec] != after[lec]}
    assert moved == {lec for lec in LECTURES if before[lec] == "h2"}


def test_a_stale_or_unready_host_is_not_chosen_and_its_lectures_come_back_with_it() -> None:
    hosts = [host(f"h{n}") for n in range(3)]
    before = owners(hosts)
    gone = owners([hosts[0], host("h1", age=TTL + 1), hosts[2]])  # missed its heartbeats
    unready = owners([hosts[0], host("h1", ready=False), hosts[2]])  # draining
    assert "h1" not in set(gone.values()) | set(unready.values())
    assert gone == unready
    assert owners(hosts) == before


def test_a_host_over_its_in_flight_target_is_tried_after_the_others() -> None:
    hosts = [host(f"h{n}") for n in range(3)]
    lecture = LECTURES[0]
    first = routing.candidates(lecture, hosts, NOW, TTL)[0]
    busy = [host(h.host_id, in_flight=8 if h.host_id == first.host_id else 0) for h in hosts]
    order = routing.candidates(lecture, busy, NOW, TTL)
    assert order[0].host_id != first.host_id and order[-1].host_id == first.host_id
    everyone_busy = [host(h.host_id, in_flight=9) for h in hosts]
    assert routing.candidates(lecture, everyone_busy, NOW, TTL)[0].host_id == first.host_id


def test_no_live_host_means_no_candidate() -> None:
    assert routing.candidates("lec", [], NOW, TTL) == []
    assert routing.candidates("lec", [host("h0", age=TTL)], NOW, TTL) == []
