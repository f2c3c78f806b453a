"""This AgentCore in the host registry (host_registry.py), so the edge sends each lecture's
questions to the host whose model server holds it (edge/routing.py).

Every `agentcore.heartbeat_seconds` the host writes its own item: its URL, whether it is ready
(the model server answered lately and it is not draining), its work in flight and the target above
which the edge passes it over, and the lectures its model server holds (media_refs.HeldMedia). A
draining host deletes its item first (`leave`), before the drain refuses work; a host that dies
unannounced drops out when its heartbeat is older than `agentcore.registry_ttl_seconds`.
A failing write only logs: routing then falls back to the balancer, never to an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from synapscribe.agentcore.media_refs import HeldMedia
from synapscribe.host_registry import Host, HostRegistry
from synapscribe.platform import PlatformConfig

log = logging.getLogger(__name__)


class Registration:
    def __init__(
        self,
        registry: HostRegistry,
        host_id: str,
        url: str,
        platform: PlatformConfig,
        held: HeldMedia,
        in_flight: Callable[[], int],
        target: int,
        ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self.registry = registry
        self.host_id = host_id
        self.url = url
        self.platform = platform
        self.held = held
        self.in_flight = in_flight
        self.target = target
        self.ready = ready
        self.left = False
        self._task: asyncio.Task[None] | None = None

    async def record(self) -> Host:
        return Host(
            host_id=self.host_id,
            url=self.url,
            ready=await self.ready(),
            in_flight=self.in_flight(),
            target=self.target,
            heartbeat_at=time.time(),
            lectures=frozenset(self.held.lectures()),
        )

    async def beat(self) -> None:
        """Write the item once (not after `leave`)."""
        if self.left:
            return
        try:
            record = await self.record()
            await asyncio.to_thread(self.registry.put, record, self.platform.agentcore.registry_ttl_seconds)
        except Exception as exc:  # the registry is an optimisation: never fatal
            log.warning("host registry: heartbeat not written (%s); the edge uses the balancer", exc)

    def start(self) -> Registration:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self.left:
            await self.beat()
            await asyncio.sleep(self.platform.agentcore.heartbeat_seconds)

    async def leave(self) -> None:
        """Out of the registry: no new lecture is routed here (drain, shutdown)."""
        if self.left:
            return
        self.left = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.to_thread(self.registry.leave, self.host_id)
            log.info("host registry: %s left", self.host_id)
        except Exception as exc:
            log.warning("host registry: leaving failed (%s); the item expires with its TTL", exc)
