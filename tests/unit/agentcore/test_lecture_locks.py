"""Per-lecture locks are shared while in use and forgotten afterwards (no growth per lecture)."""

from __future__ import annotations

import asyncio
import gc

from synapscribe.agentcore.lectures import LectureContexts
from synapscribe.platform import load_platform


async def test_lecture_locks_are_shared_then_forgotten() -> None:
    # Only the lock map is exercised: nothing here touches AWS or the model.
    contexts = LectureContexts(None, None, None, load_platform())  # type: ignore[arg-type]
    order: list[str] = []

    async def work(name: str) -> None:
        async with contexts._lock("lec_1"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a in", "a out", "b in", "b out"], "one lecture's work is serialised"
    gc.collect()
    assert len(contexts._locks) == 0
