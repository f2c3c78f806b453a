"""AgentCore's HTTP API (docs/interfaces.md): health, readiness, queries and lecture transcription."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Path
from fastapi.responses import JSONResponse

from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.aws import AwsIo, make_pusher
from synapscribe.agentcore.jobs import QueryJob, TranscribeRequest
from synapscribe.agentcore.lectures import LectureContexts, LectureUnavailableError, TranscriptTooLongError
from synapscribe.agentcore.media import MediaError
from synapscribe.agentcore.pipeline import QueryPipeline, Services
from synapscribe.agentcore.settings import AgentCoreSettings
from synapscribe.agentcore.tts_client import TtsClient
from synapscribe.agentcore.vllm_client import UpstreamError, VllmClient
from synapscribe.contract import ID_PATTERN, Lecture
from synapscribe.settings import AwsResources
from synapscribe.store import Store

log = logging.getLogger(__name__)


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
    """Transcribe a transcript-mode lecture, store it, set it ready and tell the uploader."""
    lecture = await s.aws.call(
        s.aws.store.update_lecture, lecture_id, {"status": "transcribing"}, ("pending", "transcribing")
    )
    if lecture is None:
        log.info("lecture %s: not pending or transcribing any more; nothing to do", lecture_id)
        return
    connection_id = connection_id or lecture.get("connectionId")
    started = time.perf_counter()
    try:
        transcript = await s.lectures.make_transcript(lecture)
    except (UpstreamError, adm.BusyError) as exc:
        reason = f"The lecture could not be transcribed ({exc}). Upload it again in a few minutes."
        fields: dict[str, Any] = {"status": "rejected", "reason": reason}
    except TranscriptTooLongError as exc:
        fields = {"status": "rejected", "reason": f"The lecture is too long: {exc}."}
    except (LectureUnavailableError, MediaError) as exc:
        fields = {"status": "rejected", "reason": f"The lecture could not be transcribed: {exc}."}
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s transcribing lecture %s", error_id, lecture_id)
        fields = {
            "status": "rejected",
            "reason": f"The lecture could not be transcribed (error id {error_id}). Upload it again.",
        }
    else:
        fields = {
            "status": "ready",
            "contextMode": "transcript",
            "transcriptKey": f"{s.platform.storage.prefixes.transcripts}{lecture_id}.json",
            "durationSeconds": lecture.get("durationSeconds") or transcript["durationSeconds"],
        }
        log.info(
            "lecture %s: transcribed %d segments in %.1f s",
            lecture_id,
            len(transcript["segments"]),
            time.perf_counter() - started,
        )
    updated = await s.aws.call(s.aws.store.update_lecture, lecture_id, fields, "transcribing")
    if updated is None:
        return
    if connection_id:
        message = Lecture(
            lectureId=lecture_id,
            status=updated["status"],
            durationSeconds=updated.get("durationSeconds"),
            contextMode=updated.get("contextMode") if updated["status"] == "ready" else None,
            reason=updated.get("reason") if updated["status"] == "rejected" else None,
        )
        await s.aws.push(connection_id, message)


def create_app(
    settings: AgentCoreSettings | None, resources: AwsResources | None, services: Services | None = None
) -> FastAPI:
    state: dict[str, Services] = {}
    transcribing: set[str] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            state["s"] = services
        else:
            assert settings is not None and resources is not None
            state["s"] = build_services(settings, resources)
        yield
        s = state["s"]
        for task in list(s.tasks):
            task.cancel()
        await asyncio.gather(*s.tasks, return_exceptions=True)
        await s.vllm.aclose()
        await s.tts.aclose()
        s.aws.close()

    app = FastAPI(title="SynapScribe AgentCore", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        s = state["s"]
        missing: list[str] = []

        async def check_model() -> None:
            try:
                served = await s.vllm.models()
            except Exception as exc:
                missing.append(f"{s.vllm.name}: {exc}")
                return
            if s.vllm.model not in served:
                missing.append(f"{s.vllm.name} does not list the model {s.vllm.model!r} (it lists {served})")

        async def check_tts() -> None:
            if not await s.tts.healthy():
                missing.append(f"{s.tts.name} does not answer /health")

        await asyncio.gather(check_model(), check_tts())
        if missing:
            return JSONResponse({"ready": False, "missing": missing}, status_code=503)
        return JSONResponse({"ready": True, "model": s.vllm.model})

    @app.post("/v1/queries", status_code=202)
    async def query(job: QueryJob) -> dict[str, Any]:
        accepted_at = time.perf_counter()
        s = state["s"]
        s.spawn(QueryPipeline(s).run(job, accepted_at))
        return {"accepted": True, "requestId": job.requestId}

    @app.post("/v1/lectures/{lecture_id}/transcribe", status_code=202)
    async def transcribe(body: TranscribeRequest, lecture_id: str = Path(pattern=ID_PATTERN)) -> JSONResponse:
        s = state["s"]
        lecture = await s.aws.call(s.aws.store.get_lecture, lecture_id, None)
        if lecture is None:
            return JSONResponse({"detail": f"lecture {lecture_id} not found"}, status_code=404)
        status = lecture.get("status")
        if status == "ready":
            return JSONResponse({"lectureId": lecture_id, "status": status}, status_code=200)
        if status not in ("pending", "transcribing"):
            return JSONResponse(
                {
                    "detail": f"lecture {lecture_id} is {status}; only a pending or transcribing lecture is transcribed"
                },
                status_code=409,
            )
        if lecture_id not in transcribing:
            transcribing.add(lecture_id)
            task = s.spawn(prepare_transcript(s, lecture_id, body.connectionId))
            task.add_done_callback(lambda _: transcribing.discard(lecture_id))
        return JSONResponse({"lectureId": lecture_id, "status": "transcribing"}, status_code=202)

    return app
