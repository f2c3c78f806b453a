"""The smoke test's steps as they run: each step is timed and recorded in the report with its
outcome, and the exchanges the steps are made of (open a client, expect a reply, expect an error)
fail the step with a StepFailed that says what was expected and what came."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from synapscribe.contract import ErrorMessage

from synapscribe_ops.smoke.checks import contract_problems
from synapscribe_ops.smoke.client import ClientError, Received, StackClient
from synapscribe_ops.smoke.inputs import SmokeInputs
from synapscribe_ops.smoke.report import SmokeReport, Step

#: What a successful answer to each action is (a query's stream ends in `answer`).
SUCCESS_TYPES = {
    "createUpload": "uploadUrl",
    "getLecture": "lecture",
    "startSession": "session",
    "endSession": "sessionEnded",
    "query": "answer",
}

Connector = Callable[[str], Awaitable[StackClient]]


class StepFailed(Exception):
    """A step's check failed; the message says what was expected and what came."""


class StepRunner:
    """Runs and records steps, and holds every client a step opened (closed at the end; every
    message they received is checked against the contract as the last step)."""

    def __init__(self, connect: Connector, inputs: SmokeInputs, report: SmokeReport) -> None:
        self.connect = connect
        self.inputs = inputs
        self.report = report
        self.clients: list[StackClient] = []

    async def step(self, name: str, body: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.monotonic()
        try:
            detail = await body() or ""
            ok = True
        except (StepFailed, ClientError) as exc:
            ok, detail = False, str(exc)
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        self.report.steps.append(Step(name, ok, round((time.monotonic() - started) * 1000, 1), detail))
        return ok

    async def open(self, label: str) -> StackClient:
        client = await self.connect(label)
        self.clients.append(client)
        return client

    async def expect(self, client: StackClient, message: dict[str, Any], kind: str) -> Received:
        got = await client.request(message, kind, within=self.inputs.step_timeout_s)
        if got.type != kind:
            raise StepFailed(f"expected {kind}, got {got.raw!r}")
        if got.problem:
            raise StepFailed(f"{kind} breaks the contract: {got.problem}")
        return got

    async def expect_error(
        self,
        client: StackClient,
        frame: dict[str, Any] | str | bytes,
        code: str,
        request_id: str | None = None,
    ) -> str:
        await client.send(frame)
        action = frame.get("action") if isinstance(frame, dict) else None
        success = SUCCESS_TYPES.get(action) if isinstance(action, str) else None
        got = await client.wait_type(
            "error",
            *([success] if success else []),
            request_id=request_id,
            within=self.inputs.step_timeout_s,
        )
        if not isinstance(got.message, ErrorMessage) or got.message.code != code:
            raise StepFailed(f"expected error {code}, got {got.raw!r}")
        if request_id is not None and got.message.requestId != request_id:
            raise StepFailed(f"error did not echo requestId {request_id}: {got.raw!r}")
        return got.message.message

    async def close(self) -> None:
        """Close every client and add the last step: every message received matches the contract."""
        for client in self.clients:
            await client.close()
        self.report.steps.append(self._contract_step())

    def _contract_step(self) -> Step:
        received = [m for c in self.clients for m in c.history]
        problems = contract_problems(received)
        return Step(
            "every message matches the contract",
            not problems,
            0.0,
            "; ".join(problems[:5]) or f"{len(received)} messages checked",
        )
