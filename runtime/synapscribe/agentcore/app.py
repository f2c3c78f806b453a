"""AgentCore's HTTP API (docs/interfaces.md): health, readiness, queries and lecture transcription."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response

from synapscribe.agentcore import admission as adm
from synapscribe.agentcore import correlation, metrics
from synapscribe.agentcore import diagnostics as diag
from synapscribe.agentcore.aws import AwsIo, make_pusher
from synapscribe.agentcore.drain import DRAINING_MESSAGE, Drain
from synapscribe.agentcore.jobs import QueryJob, TranscribeRequest
from synapscribe.agentcore.lectures import LectureContexts, transcribe_answer
from synapscribe.agentcore.pipeline import QueryPipeline, Services
from synapscribe.agentcore.settings import AgentCoreSettings
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import VllmClient
from synapscribe.contract import ID_PATTERN
from synapscribe.platform import load_platform
from synapscribe.settings import AwsResources
from synapscribe.store import Store

log = logging.getLogger(__name__)


def _observer(s: Services, settings: AgentCoreSettings | None) -> metrics.Observer:
    """AgentCore's EMF metrics (agentcore/metrics.py), with vLLM's /metrics relayed."""
    return metrics.Observer(
        lambda: s.admission.in_flight,
        diag.metrics_url(s.vllm.base_url),
        dimensions={"InstanceId": (settings and settings.instance_id) or socket.gethostname()},
        endpoint=settings.emf_endpoint if settings else None,
        interval=settings.metrics_interval_seconds if settings else 60.0,
        log_group=settings.emf_log_group if settings else None,
        fleet_dimensions={"AutoScalingGroupName": settings.fleet_group}
        if settings and settings.fleet_group
        else None,
    )


def build_services(settings: AgentCoreSettings, resources: AwsResources) -> Services:
    platform = settings.platform()
    limit, queue_timeout, upstream_timeout = settings.limits(platform)
    aws = AwsIo(Store(resources, platform), resources.bucket, make_pusher(settings.connections_endpoint))
    vllm = VllmClient(settings.vllm_base_url, settings.vllm_model, settings.vllm_api_key, upstream_timeout)
    admission = adm.Admission(limit, queue_timeout)
    return Services(
        platform=platform,
        aws=aws,
        vllm=vllm,
        tts=TtsClient(settings.tts_url, upstream_timeout),
        admission=admission,
        lectures=LectureContexts(aws, vllm, admission, platform),
        voice=platform.tts.default_voice,
    )


async def prepare_transcript(s: Services, lecture_id: str, connection_id: str | None) -> None:
    """Transcribe a transcript-mode lecture, store it, set it ready and tell the uploader
    (claimed in DynamoDB first, so starting it twice, here or elsewhere, works once)."""
    await s.lectures.run_transcription(lecture_id, connection_id)


def create_app(
    settings: AgentCoreSettings | None,
    resources: AwsResources | None,
    services: Services | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    state: dict[str, Services] = {}
    transcribing: set[str] = set()
    if drain is None:
        platform = services.platform if services is not None else load_platform()
        drain = Drain(
            settings.drain_timeout(platform) if settings else platform.agentcore.drain_timeout_seconds
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            state["s"] = services
        else:
            assert settings is not None and resources is not None
            state["s"] = build_services(settings, resources)
        drain.watch(lambda: len(state["s"].tasks))
        observer = _observer(state["s"], settings).start()
        yield
        await observer.stop()
        s = state["s"]
        for task in list(s.tasks):
            task.cancel()
        await asyncio.gather(*s.tasks, return_exceptions=True)
        await s.vllm.aclose()
        await s.tts.aclose()
        s.aws.close()

    app = FastAPI(title="SynapScribe AgentCore", lifespan=lifespan)
    app.state.drain = drain

    def draining() -> JSONResponse:
        return JSONResponse({"detail": DRAINING_MESSAGE, "draining": True}, status_code=503)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if drain.draining:
            return JSONResponse(
                {"ready": False, "draining": True, "missing": [DRAINING_MESSAGE]}, status_code=503
            )
        s = state["s"]
        missing: list[str] = []

        async def check_model() -> None:
            try:
                served = await s.vllm.served()
            except Exception as exc:
                missing.append(f"{s.vllm.name}: {exc}")
                return
            if s.vllm.model not in served:
                missing.append(
                    f"{s.vllm.name} does not list the model {s.vllm.model!r} (it lists {list(served)})"
                )
                return
            # AgentCore fits every request to its configured context; a server with less refuses
            # the largest (too_large for the client), so it is not ready until the two agree.
            context, planned = served[s.vllm.model], s.platform.vllm.max_model_len
            if context is not None and context < planned:
                missing.append(
                    f"{s.vllm.name} serves {s.vllm.model!r} with a context of {context} tokens; AgentCore plans "
                    f"for {planned} (platform.yaml vllm.max_model_len or SYNAPSCRIBE_MAX_MODEL_LEN): set both alike"
                )

        async def check_tts() -> None:
            if not await s.tts.healthy():
                missing.append(f"{s.tts.name} does not answer /health")

        await asyncio.gather(check_model(), check_tts())
        if missing:
            return JSONResponse({"ready": False, "missing": missing}, status_code=503)
        return JSONResponse({"ready": True, "model": s.vllm.model})

    @app.post("/v1/queries", status_code=202)
    async def query(job: QueryJob) -> Any:
        accepted_at = time.perf_counter()
        if drain.draining:
            return draining()
        s = state["s"]
        with correlation.bound(job.correlationId or job.requestId):
            s.spawn(QueryPipeline(s).run(job, accepted_at))  # the task keeps the correlation id
        return {"accepted": True, "requestId": job.requestId}

    @app.post("/v1/lectures/{lecture_id}/transcribe", status_code=202)
    async def transcribe(body: TranscribeRequest, lecture_id: str = Path(pattern=ID_PATTERN)) -> JSONResponse:
        if drain.draining:
            return draining()
        s = state["s"]
        # One read decides the answer; the work (claim, transcription) runs in the background.
        lecture = await s.aws.call(s.aws.store.get_lecture, lecture_id, None)
        decided = transcribe_answer(lecture_id, lecture)
        if decided.start and lecture_id not in transcribing:
            transcribing.add(lecture_id)
            task = s.spawn(prepare_transcript(s, lecture_id, body.connectionId))
            task.add_done_callback(lambda _: transcribing.discard(lecture_id))
        return JSONResponse(decided.body, status_code=decided.status_code)

    def only_local(request: Request) -> JSONResponse | None:
        if diag.is_local_caller(request.scope.get("client"), request.scope.get("server"), request.headers):
            return None
        return JSONResponse({"detail": diag.ONLY_LOCAL}, status_code=403)

    @app.get("/v1/diagnostics/gpu", response_model=None)
    async def diagnostics_gpu(request: Request) -> JSONResponse | list[dict[str, Any]]:
        refused = only_local(request)
        if refused is not None:
            return refused
        try:
            gpus = await diag.query_gpus()
        except diag.GpuUnavailableError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return [g.wire() for g in gpus]

    @app.get("/v1/diagnostics/metrics", response_model=None)
    async def diagnostics_metrics(request: Request) -> Response:
        refused = only_local(request)
        if refused is not None:
            return refused
        s = state["s"]
        url = diag.metrics_url(s.vllm.base_url)
        timeout = s.platform.agentcore.upstream_timeout_seconds
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0))) as http:
                upstream = await http.get(url)
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"detail": f"vLLM's metrics at {url} cannot be read: {exc!r}"}, status_code=503
            )
        if upstream.status_code != 200:
            return JSONResponse(
                {"detail": f"vLLM's metrics at {url} answered {upstream.status_code}: {upstream.text[:200]}"},
                status_code=502,
            )
        return Response(
            upstream.content,
            media_type=upstream.headers.get("content-type", "text/plain; version=0.0.4"),
        )

    return app
