"""The event loop: questions, model slots on each instance, the scaling policy and spot interruptions.

Model of one instance (what AgentCore does): `slots` requests run at once (vLLM's max_num_seqs);
further requests wait, served as AgentCore's admission serves them (agentcore/admission.py's
WaitQueue, the same code: answers before transcriptions, then first come first served, except that
a request that has waited `aging` seconds goes first), and one that waits
longer than `queue_timeout` leaves and its question gets `busy`. A voice question is two requests (its transcription and its answer,
sent together); a text question is one. The load balancer sends each question to the serving
instance with the fewest outstanding requests (running plus waiting). With no serving instance
the question gets `busy` at once (counted apart as `no_host`).

Lectures (`FleetModel.held_lectures` > 0): each instance's model server keeps the prefixes of its
last `held_lectures` lectures (an LRU); a question whose lecture its instance does not hold pays
the lecture's cold prefill (`Question.cold`, an input) on its answer. With `routing="affinity"` a
question goes to its lecture's instance by rendezvous hashing over the serving instances
(edge/routing.py's weight), the next in rank when that one has all its slots taken, as the
WebSocket handler routes it; else to the least loaded. With `held_lectures` 0, the old model: the
first question of a session pays the prefill, every follow-up hits.

Fleet: the group keeps `desired` instances launched; a new one serves after `startup` seconds.
Extra instances are removed newest first (a starting one at once, a serving one after it drains:
it takes no new questions and ends when its requests have finished). A spot interruption drains
the instance and the group launches a replacement. Cost counts every instance from launch to end.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synapscribe.agentcore.admission import WaitQueue
from synapscribe.edge.routing import weight

from synapscribe_ops.simulate.policy import METRIC_PERIOD_SECONDS, Policy, TargetTracker


@dataclass
class Question:
    arrival: float
    #: seconds of model time for each of its requests (queueing theory's service times)
    service_times: tuple[float, ...]
    #: each request's admission priority (lower first; default: all equal, first come first served)
    priorities: tuple[int, ...] | None = None
    pending: int = 0
    wait: float = 0.0
    #: how long its answer (its last request, workload.py) waited for a slot: the part of the time
    #: to first audio that admission decides
    answer_wait: float = 0.0
    outcome: str | None = None
    #: the session's lecture, and the seconds its prefill takes on an instance that does not hold it
    lecture: int = 0
    cold: float = 0.0
    #: a follow-up (not the session's first question)
    follow_up: bool = False
    #: the model's first token once the answer runs on a warm prefix (seconds)
    first_token_base: float = 0.0
    #: whether its instance held its lecture; the time from arrival to the answer's first token
    hit: bool | None = None
    first_token: float | None = None


@dataclass(eq=False)
class Request:
    question: Question
    service_time: float
    enqueued: float
    is_answer: bool = False
    state: str = "queued"  # queued -> running -> done, or queued -> dropped


@dataclass(eq=False)
class Instance:
    ident: int
    launched: float
    state: str  # starting, serving, draining, gone
    slots_free: int
    queue: WaitQueue[Request] = field(default_factory=WaitQueue)
    outstanding: int = 0
    ended: float | None = None
    #: lectures whose prefix its model server holds, least recently used first
    held: dict[int, None] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetModel:
    slots: int
    queue_timeout: float
    startup: float
    #: spot interruptions per instance-hour (0: none)
    spot_rate_per_hour: float = 0.0
    #: admission's aging bound (inf: strict priority, 0: first come first served)
    aging: float = math.inf
    #: lectures each instance's model server holds (0: the session-level model, module docstring)
    held_lectures: int = 0
    #: "least-loaded" (the balancer) or "affinity" (lecture-affinity routing)
    routing: str = "least-loaded"


@dataclass
class Outcome:
    questions: list[Question]
    instance_seconds: float
    interruptions: int
    launches: int
    desired_by_minute: list[int]


class Simulation:
    def __init__(self, model: FleetModel, policy: Policy, *, seed: int, horizon: float) -> None:
        self.model = model
        self.policy = policy
        self.horizon = horizon
        self.rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not security
        self.now = 0.0
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self.instances: list[Instance] = []
        #: the instances that take new questions (kept apart: every arrival scans them)
        self._serving: list[Instance] = []
        self.tracker = TargetTracker(policy.scaling) if policy.scaling else None
        self.desired = self._floor(0.0)
        self.interruptions = 0
        self.launches = 0
        self.desired_by_minute: list[int] = []
        self._in_flight = 0
        self._area = 0.0
        self._area_since = 0.0

    # -- bookkeeping -------------------------------------------------------------------------

    def _push(self, when: float, kind: str, payload: Any = None) -> None:
        heapq.heappush(self._events, (when, next(self._seq), kind, payload))

    def _floor(self, t: float) -> int:
        p = self.policy
        return min(p.maximum, max(p.minimum, p.floor.at(t / 3600.0)))

    def _change_in_flight(self, delta: int) -> None:
        self._area += self._in_flight * (self.now - self._area_since)
        self._area_since = self.now
        self._in_flight += delta

    def _active(self) -> list[Instance]:
        return [i for i in self.instances if i.state in ("starting", "serving")]

    # -- fleet ---------------------------------------------------------------------------------

    def _launch(self, ready_now: bool = False) -> None:
        inst = Instance(
            len(self.instances), self.now, "starting", self.model.slots, WaitQueue(self.model.aging)
        )
        self.instances.append(inst)
        self.launches += 1
        if ready_now:
            self._ready(inst)
        else:
            self._push(self.now + self.model.startup, "ready", inst)
        if self.model.spot_rate_per_hour > 0:
            self._push(self.now + self.rng.expovariate(self.model.spot_rate_per_hour / 3600.0), "spot", inst)

    def _end(self, inst: Instance) -> None:
        if inst in self._serving:
            self._serving.remove(inst)
        inst.state = "gone"
        inst.ended = self.now

    def _drain(self, inst: Instance) -> None:
        if inst.state == "starting" or inst.outstanding == 0:
            self._end(inst)
        else:
            self._serving.remove(inst)
            inst.state = "draining"

    def _reconcile(self) -> None:
        active = self._active()
        for _ in range(self.desired - len(active)):
            self._launch()
        extra = len(active) - self.desired
        if extra > 0:
            # Newest first: a starting instance is the cheapest to give up; then the least loaded.
            victims = sorted(active, key=lambda i: (i.state != "starting", i.outstanding, -i.launched))
            for inst in victims[:extra]:
                self._drain(inst)

    # -- requests ------------------------------------------------------------------------------

    def _arrive(self, q: Question) -> None:
        serving = self._serving
        if not serving:
            q.outcome = "no_host"
            return
        inst = self._route(q, serving)
        self._prefill(inst, q)
        q.pending = len(q.service_times)
        priorities = q.priorities or (0,) * len(q.service_times)
        last = len(q.service_times) - 1
        for index, (service_time, priority) in enumerate(zip(q.service_times, priorities, strict=True)):
            req = Request(q, service_time, self.now, is_answer=index == last)
            inst.outstanding += 1
            self._change_in_flight(+1)
            # A free slot means nobody live is waiting (a freed slot takes the next waiter at once).
            if inst.slots_free > 0:
                self._start(inst, req)
            else:
                inst.queue.push(req, priority, self.now)
                if math.isfinite(self.model.queue_timeout):
                    self._push(self.now + self.model.queue_timeout, "timeout", (inst, req))

    def _route(self, q: Question, serving: list[Instance]) -> Instance:
        if self.model.routing != "affinity":
            return min(serving, key=lambda i: i.outstanding)
        ranked = sorted(serving, key=lambda i: weight(str(q.lecture), str(i.ident)), reverse=True)
        return next((i for i in ranked if i.slots_free > 0), ranked[0])

    def _prefill(self, inst: Instance, q: Question) -> None:
        """The answer pays the lecture's cold prefill unless the instance holds its prefix."""
        if self.model.held_lectures <= 0:
            q.hit = q.follow_up
        else:
            q.hit = q.lecture in inst.held
            inst.held.pop(q.lecture, None)
            inst.held[q.lecture] = None
            while len(inst.held) > self.model.held_lectures:
                del inst.held[next(iter(inst.held))]
        if not q.hit and q.cold > 0:
            *rest, answer = q.service_times
            q.service_times = (*rest, answer + q.cold)

    def _start(self, inst: Instance, req: Request) -> None:
        inst.slots_free -= 1
        req.state = "running"
        req.question.wait = max(req.question.wait, self.now - req.enqueued)
        if req.is_answer:
            q = req.question
            q.answer_wait = self.now - req.enqueued
            q.first_token = q.answer_wait + q.first_token_base + (0.0 if q.hit else q.cold)
        self._push(self.now + req.service_time, "done", (inst, req))

    def _finish(self, inst: Instance, req: Request, outcome: str) -> None:
        inst.outstanding -= 1
        self._change_in_flight(-1)
        q = req.question
        q.pending -= 1
        if outcome == "busy":
            q.outcome = "busy"
            q.wait = max(q.wait, self.model.queue_timeout)
        elif q.pending == 0 and q.outcome is None:
            q.outcome = "answered"
        if inst.state == "draining" and inst.outstanding == 0:
            self._end(inst)

    def _done(self, inst: Instance, req: Request) -> None:
        req.state = "done"
        inst.slots_free += 1
        self._finish(inst, req, "answered")
        while inst.slots_free > 0:
            nxt = inst.queue.pop(self.now, _queued)
            if nxt is None:
                return
            self._start(inst, nxt)

    def _timeout(self, inst: Instance, req: Request) -> None:
        if req.state != "queued":
            return
        req.state = "dropped"
        if req.is_answer:
            req.question.answer_wait = self.now - req.enqueued
        self._finish(inst, req, "busy")

    # -- scaling -------------------------------------------------------------------------------

    def _tick(self) -> None:
        self._change_in_flight(0)
        in_flight = self._area / METRIC_PERIOD_SECONDS
        self._area = 0.0
        floor = self._floor(self.now)
        if self.tracker is None:
            desired = floor
        else:
            desired = self.tracker.decide(self.now, in_flight, len(self._serving), self.desired)
        self.desired = min(self.policy.maximum, max(floor, desired))
        self.desired_by_minute.append(self.desired)
        self._reconcile()

    def _spot(self, inst: Instance) -> None:
        if inst.state in ("starting", "serving"):
            self.interruptions += 1
            self._drain(inst)
            self._reconcile()

    # -- run -----------------------------------------------------------------------------------

    def run(self, questions: list[Question]) -> Outcome:
        for _ in range(self.desired):
            self._launch(ready_now=True)
        for q in questions:
            self._push(q.arrival, "arrive", q)
        t = METRIC_PERIOD_SECONDS
        while t < self.horizon:
            self._push(t, "tick")
            t += METRIC_PERIOD_SECONDS
        handlers: dict[str, Callable[[Any], None]] = {
            "arrive": self._arrive,
            "done": lambda p: self._done(*p),
            "timeout": lambda p: self._timeout(*p),
            "ready": self._ready,
            "spot": self._spot,
            "tick": lambda _p: self._tick(),
        }
        while self._events:
            when, _seq, kind, payload = heapq.heappop(self._events)
            if when > self.horizon and kind in ("spot", "ready"):
                continue
            self.now = when
            handlers[kind](payload)
        end = max(self.horizon, self.now)
        seconds = sum(
            min(i.ended if i.ended is not None else end, self.horizon) - i.launched for i in self.instances
        )
        return Outcome(questions, seconds, self.interruptions, self.launches, self.desired_by_minute)

    def _ready(self, inst: Instance) -> None:
        if inst.state == "starting":
            inst.state = "serving"
            self._serving.append(inst)


def _queued(req: Request) -> bool:
    return req.state == "queued"
