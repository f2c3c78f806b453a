"""What AgentCore's routes and its query pipeline work with (`AgentCoreDeps`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from synapscribe import planner
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import media_refs
from synapscribe.agentcore.aws import AwsIo
from synapscribe.agentcore.interrupts import Interrupts
from synapscribe.agentcore.lectures import LectureContexts
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.platform import PlatformConfig


@dataclass
class AgentCoreDeps:
    """What AgentCore's routes and pipeline work with: the platform configuration, the clients of
    AWS, the model server and TTS, admission and the lecture contexts, and its background tasks.
    (A "service" is a server process: the TTS service, the AgentCore service.)"""

    platform: PlatformConfig
    aws: AwsIo
    vllm: VllmClient
    tts: TtsClient
    admission: adm.Admission
    lectures: LectureContexts
    voice: str = ""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    #: the lecture items this host's model server holds (sent by uuid alone: media_refs.py)
    held: media_refs.HeldMedia = field(default_factory=media_refs.HeldMedia)
    counter: planner.TextTokenCounter | None = None  # made from `vllm` when first needed
    interrupts: Interrupts = field(default_factory=Interrupts)  # the contract's `cancel`

    def text_counter(self) -> planner.TextTokenCounter:
        if self.counter is None:
            self.counter = planner.TextTokenCounter(self.vllm.count_tokens)
        return self.counter

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
