"""Hand a lecture's work to the host that holds the lecture (edge/routing.py), else the balancer.

The registry (host_registry.py) is read at most every REGISTRY_CACHE_SECONDS per handler instance.
The lecture's hosts are tried in routing order, at most MAX_DIRECT_TRIES of them: one that
refuses the connection, is unavailable or busy (draining, full) is passed over for the next. A
timeout is not: the host may have accepted the job, and a second host would answer it twice.
With no registry, no live host, or every direct try refused, the job goes to the internal
balancer (`agentcore_url`) exactly as before.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from synapscribe.edge import routing
from synapscribe.edge.agentcore_client import AgentCoreBusy, AgentCoreTimeout, AgentCoreUnavailable, post_job
from synapscribe.edge.config import EdgeDeps
from synapscribe.host_registry import Host, HostRegistry

log = logging.getLogger(__name__)

#: Hosts tried directly before the balancer.
MAX_DIRECT_TRIES = 2
#: A handler instance reuses what it read from the registry for this long (a question's hand-off
#: should not wait on a scan; a heartbeat is seconds apart anyway).
REGISTRY_CACHE_SECONDS = 2.0

_cache: dict[str, tuple[float, list[Host]]] = {}


def registered_hosts(table_name: str, now: float | None = None) -> list[Host]:
    """The registry's hosts (cached briefly); [] when it cannot be read (logged)."""
    now = time.monotonic() if now is None else now
    cached = _cache.get(table_name)
    if cached is not None and now - cached[0] < REGISTRY_CACHE_SECONDS:
        return cached[1]
    try:
        hosts = HostRegistry.named(table_name).hosts()
    except Exception as exc:  # routing is an optimisation: the balancer still answers
        log.warning("host registry %s unreadable (%s); using the balancer", table_name, exc)
        hosts = []
    _cache[table_name] = (now, hosts)
    return hosts


def post_for_lecture(
    balancer_url: str,
    hosts: list[Host],
    lecture_id: str,
    path: str,
    body: dict[str, Any],
    timeout: float,
    ttl_seconds: float,
) -> int:
    """POST the job to the lecture's host (or the next live one), else to the balancer."""
    for host in routing.candidates(lecture_id, hosts, time.time(), ttl_seconds)[:MAX_DIRECT_TRIES]:
        try:
            return post_job(host.url, path, body, timeout)
        except AgentCoreTimeout:
            raise
        except (AgentCoreUnavailable, AgentCoreBusy) as exc:
            log.info("lecture %s: host %s passed over (%s)", lecture_id, host.host_id, exc)
    return post_job(balancer_url, path, body, timeout)


def post_routed(deps: EdgeDeps, lecture_id: str, path: str, body: dict[str, Any]) -> int:
    """The handlers' hand-off: `post_for_lecture` with the registry named by the resources."""
    table = deps.resources.hosts_table
    hosts = registered_hosts(table) if table else []
    return post_for_lecture(
        deps.settings.agentcore_url,
        hosts,
        lecture_id,
        path,
        body,
        deps.settings.agentcore_timeout_seconds,
        deps.platform.agentcore.registry_ttl_seconds,
    )
