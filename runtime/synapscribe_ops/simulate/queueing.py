"""Queueing theory's answers for the cases it has them: M/M/c (Erlang C) and M/M/1."""

from __future__ import annotations

import math


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> float:
    """P(an arrival waits) in an M/M/c queue (Erlang's C formula); needs utilisation < 1."""
    a = arrival_rate / service_rate  # offered load, erlangs
    rho = a / servers
    if not 0 < rho < 1:
        raise ValueError(f"utilisation {rho:g} must be between 0 and 1 for a steady state")
    # Summed in log space-free form with a running term (a^k / k!), stable for c up to hundreds.
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= a / k
        total += term
    last = term * a / servers / (1 - rho)
    return last / (total + last)


def mmc_mean_wait(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue, W_q = C(c, a) / (c mu - lambda)."""
    return erlang_c(servers, arrival_rate, service_rate) / (servers * service_rate - arrival_rate)


def mm1_mean_wait(arrival_rate: float, service_rate: float) -> float:
    """M/M/1: W_q = rho / (mu - lambda)."""
    rho = arrival_rate / service_rate
    if not 0 < rho < 1:
        raise ValueError(f"utilisation {rho:g} must be between 0 and 1 for a steady state")
    return rho / (service_rate - arrival_rate)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of an already sorted list; 0 for an empty one."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]
