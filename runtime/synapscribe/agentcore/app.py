"""AgentCore's HTTP API (docs/interfaces.md): health, readiness, queries and lecture transcription.

The routes live on module-level routers and read what they work with from `request.app.state`
(`deps`: AgentCoreDeps, `drain`, `transcribing`), as vLLM's OpenAI entrypoint and the FastAPI project
template do; `create_app` only wires the state, the lifespan and the routers together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import boto3
import httpx
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response

from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import correlation, metrics
from synapscribe.agentcore import diagnostics as diag
from synapscribe.agentcore.aws import AwsIo, make_pusher
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.drain import DRAINING_MESSAGE, Drain
from synapscribe.agentcore.jobs import CancelJob, QueryJob, TranscribeRequest
from synapscribe.agentcore.lectures import LectureContexts, transcribe_answer
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe.agentcore.registration import Registration
from synapscribe.agentcore.settings import AgentCoreSettings
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.contract import ID_PATTERN
from synapscribe.host_registry import HostRegistry
from synapscribe.platform import load_platform
from synapscribe.settings import AwsResources
from synapscribe.store import Store

log = logging.getLogger(__name__)


def _observer(deps: AgentCoreDeps, settings: AgentCoreSettings | None) -> metrics.Observer:
    """AgentCore's EMF metrics (agentcore/metrics.py), with vLLM's /metrics relayed."""
    return metrics.Observer(
        lambda: deps.admission.in_flight,
        diag.metrics_url(deps.vllm.base_url),
        dimensions={"InstanceId": (settings and settings.instance_id) or socket.gethostname()},
        endpoint=settings.emf_endpoint if settings else None,
        interval=settings.metrics_interval_seconds if settings else 60.0,
        log_group=settings.emf_log_group if settings else None,
        fleet_dimensions={"AutoScalingGroupName": settings.fleet_group}
        if settings and settings.fleet_group
        else None,
    )


def build_deps(settings: AgentCoreSettings, resources: AwsResources) -> AgentCoreDeps:
    platform = settings.platform()
    limit, queue_timeout, upstream_timeout = settings.limits(platform)
    aws = AwsIo(Store(resources, platform), resources.bucket, make_pusher(settings.connections_endpoint))
    vllm = VllmClient(settings.vllm_base_url, settings.vllm_model, settings.vllm_api_key, upstream_timeout)
    admission = adm.Admission(limit, queue_timeout, platform.agentcore.admission_aging_seconds)
    return AgentCoreDeps(
        platform=platform,
        aws=aws,
        vllm=vllm,
        tts=TtsClient(settings.tts_url, upstream_timeout),
        admission=admission,
        lectures=LectureContexts(aws, vllm, admission, platform),
        voice=platform.tts.default_voice,
    )


async def prepare_transcript(deps: AgentCoreDeps, lecture_id: str, connection_id: str | None) -> None:
    """Transcribe a transcript-mode lecture, store it, set it ready and tell the uploader
    (claimed in DynamoDB first, so starting it twice, here or elsewhere, works once)."""
    await deps.lectures.run_transcription(lecture_id, connection_id)


def _deps(request: Request) -> AgentCoreDeps:
    deps: AgentCoreDeps = request.app.state.deps
    return deps


def _drain(request: Request) -> Drain:
    drain: Drain = request.app.state.drain
    return drain


def _draining() -> JSONResponse:
    return JSONResponse({"detail": DRAINING_MESSAGE, "draining": True}, status_code=503)


async def _model_problem(deps: AgentCoreDeps) -> str | None:
    """Why the model server cannot answer AgentCore's requests, or None when it can."""
    try:
        served = await deps.vllm.served()
    except Exception as exc:
        return f"{deps.vllm.name}: {exc}"
    if deps.vllm.model not in served:
        return f"{deps.vllm.name} does not list the model {deps.vllm.model!r} (it lists {list(served)})"
    # AgentCore fits every request to its configured context; a server with less refuses
    # the largest (too_large for the client), so it is not ready until the two agree.
    context, planned = served[deps.vllm.model], deps.platform.vllm.max_model_len
    if context is not None and context < planned:
        return (
            f"{deps.vllm.name} serves {deps.vllm.model!r} with a context of {context} tokens; AgentCore plans "
            f"for {planned} (platform.yaml vllm.max_model_len or SYNAPSCRIBE_MAX_MODEL_LEN): set both alike"
        )
    return None


async def _tts_problem(deps: AgentCoreDeps) -> str | None:
    if not await deps.tts.healthy():
        return f"{deps.tts.name} does not answer /health"
    return None


def _only_local(request: Request) -> JSONResponse | None:
    if diag.is_local_caller(request.scope.get("client"), request.scope.get("server"), request.headers):
        return None
    return JSONResponse({"detail": diag.ONLY_LOCAL}, status_code=403)


health_router = APIRouter()
jobs_router = APIRouter()
diagnostics_router = APIRouter(prefix="/v1/diagnostics")


@health_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    if _drain(request).draining:
        return JSONResponse(
            {"ready": False, "draining": True, "missing": [DRAINING_MESSAGE]}, status_code=503
        )
    deps = _deps(request)
    problems = await asyncio.gather(_model_problem(deps), _tts_problem(deps))
    missing = [p for p in problems if p is not None]
    if missing:
        return JSONResponse({"ready": False, "missing": missing}, status_code=503)
    return JSONResponse({"ready": True, "model": deps.vllm.model})


@jobs_router.post("/v1/queries", status_code=202)
async def query(job: QueryJob, request: Request) -> Any:
    accepted_at = time.perf_counter()
    if _drain(request).draining:
        return _draining()
    deps = _deps(request)
    with correlation.bound(job.correlationId or job.requestId):
        deps.spawn(QueryPipeline(deps).run(job, accepted_at))  # the task keeps the correlation id
    return {"accepted": True, "requestId": job.requestId}


#: How long a cancel waits for its answer to end (its model slot back) before it answers anyway.
CANCEL_WAIT_SECONDS = 2.0


@jobs_router.post("/v1/queries/cancel")
async def cancel(body: CancelJob, request: Request) -> dict[str, Any]:
    """Stop a query answering here (agentcore/interrupts.py); answers once its answer has ended
    (within CANCEL_WAIT_SECONDS) with the model slots then in flight. `stopped` is false when it
    was not running here: the stop is then kept a while in case the query is still arriving."""
    deps = _deps(request)
    asked = time.perf_counter()
    answering = deps.interrupts.stop(body.owner, body.requestId)
    if answering is None:
        return {"stopped": False, "modelSlotsInFlight": deps.admission.in_flight}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CANCEL_WAIT_SECONDS):
            await answering.ended.wait()
    return {
        "stopped": True,
        "ended": answering.ended.is_set(),
        "endedInMs": round((time.perf_counter() - asked) * 1000, 1),
        "modelSlotsInFlight": deps.admission.in_flight,
    }


@jobs_router.post("/v1/lectures/{lecture_id}/transcribe", status_code=202)
async def transcribe(
    body: TranscribeRequest, request: Request, lecture_id: str = Path(pattern=ID_PATTERN)
) -> JSONResponse:
    if _drain(request).draining:
        return _draining()
    deps = _deps(request)
    # One read decides the answer; the work (claim, transcription) runs in the background.
    lecture = await deps.aws.call(deps.aws.store.get_lecture, lecture_id, None)
    decided = transcribe_answer(lecture_id, lecture)
    transcribing: set[str] = request.app.state.transcribing
    if decided.start and lecture_id not in transcribing:
        transcribing.add(lecture_id)
        task = deps.spawn(prepare_transcript(deps, lecture_id, body.connectionId))
        task.add_done_callback(lambda _: transcribing.discard(lecture_id))
    return JSONResponse(decided.body, status_code=decided.status_code)


@diagnostics_router.get("/gpu", response_model=None)
async def diagnostics_gpu(request: Request) -> JSONResponse | list[dict[str, Any]]:
    refused = _only_local(request)
    if refused is not None:
        return refused
    try:
        gpus = await diag.query_gpus()
    except diag.GpuUnavailableError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503)
    return [g.wire() for g in gpus]


@diagnostics_router.get("/metrics", response_model=None)
async def diagnostics_metrics(request: Request) -> Response:
    refused = _only_local(request)
    if refused is not None:
        return refused
    deps = _deps(request)
    url = diag.metrics_url(deps.vllm.base_url)
    timeout = deps.platform.agentcore.upstream_timeout_seconds
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0))) as http:
            upstream = await http.get(url)
    except httpx.HTTPError as exc:
        return JSONResponse({"detail": f"vLLM's metrics at {url} cannot be read: {exc!r}"}, status_code=503)
    if upstream.status_code != 200:
        return JSONResponse(
            {"detail": f"vLLM's metrics at {url} answered {upstream.status_code}: {upstream.text[:200]}"},
            status_code=502,
        )
    return Response(
        upstream.content,
        media_type=upstream.headers.get("content-type", "text/plain; version=0.0.4"),
    )


def _registry_host_id(settings: AgentCoreSettings, advertise_url: str) -> str:
    """The key of this host's registry item. On the fleet, its role session's user id
    (`ROLEID:i-…`): the instance role may write only the item of that key (IAM dynamodb:LeadingKeys
    = ${aws:userid}, cdk compute stack). Elsewhere (the local stack) its URL."""
    if not settings.fleet_group:
        return advertise_url
    return str(boto3.client("sts").get_caller_identity()["UserId"])


def _registration(
    deps: AgentCoreDeps, settings: AgentCoreSettings | None, resources: AwsResources | None, drain: Drain
) -> Registration | None:
    """This host in the host registry (agentcore/registration.py), when it has one and an address
    to advertise; it leaves the registry as soon as the drain begins."""
    if settings is None or resources is None or not settings.advertise_url or not resources.hosts_table:
        return None

    async def ready() -> bool:
        return not drain.draining and await _model_problem(deps) is None

    try:
        host_id = _registry_host_id(settings, settings.advertise_url)
    except Exception as exc:  # the registry is an optimisation: AgentCore serves without it
        log.warning("host registry: no host id (%s); not registered, questions come via the balancer", exc)
        return None
    registration = Registration(
        HostRegistry.named(resources.hosts_table),
        host_id,
        settings.advertise_url,
        deps.platform,
        deps.held,
        lambda: deps.admission.in_flight,
        deps.admission.limit,
        ready,
    ).start()
    drain.on_begin.append(registration.leave)
    return registration


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Builds AgentCore's dependencies (unless a test handed them in), starts the metrics observer, and on
    shutdown cancels the background jobs and closes the clients."""
    state = app.state
    deps: AgentCoreDeps = state.given_deps or build_deps(state.settings, state.resources)
    state.deps = deps
    state.drain.watch(lambda: len(deps.tasks))
    observer = _observer(deps, state.settings).start()
    registration = _registration(deps, state.settings, state.resources, state.drain)
    yield
    if registration is not None:
        await registration.leave()
    await observer.stop()
    for task in list(deps.tasks):
        task.cancel()
    await asyncio.gather(*deps.tasks, return_exceptions=True)
    await deps.vllm.aclose()
    await deps.tts.aclose()
    deps.aws.close()


def create_app(
    settings: AgentCoreSettings | None,
    resources: AwsResources | None,
    deps: AgentCoreDeps | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """AgentCore's app: either `settings` and `resources` (deps built at startup) or ready
    `deps` (tests); `drain` is shared with the server that flips it on SIGTERM."""
    if deps is None and (settings is None or resources is None):
        raise ValueError("create_app needs settings and resources, or deps")
    if drain is None:
        platform = deps.platform if deps is not None else load_platform()
        drain = Drain(
            settings.drain_timeout(platform) if settings else platform.agentcore.drain_timeout_seconds
        )
    app = FastAPI(title="SynapScribe AgentCore", lifespan=_lifespan)
    app.state.settings = settings
    app.state.resources = resources
    app.state.given_deps = deps
    app.state.deps = deps  # the lifespan sets the built ones
    app.state.drain = drain
    app.state.transcribing = set()  # lecture ids whose transcription this process runs now
    for router in (health_router, jobs_router, diagnostics_router):
        app.include_router(router)
    return app
