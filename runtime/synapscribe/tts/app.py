"""The TTS service's HTTP API: OpenAI's `POST /v1/audio/speech` shape, `GET /health`, `GET /v1/voices`.

Errors are OpenAI-shaped: `{"error": {"message", "type", "param"}}`; 422 for a malformed body
(missing field, wrong type, unknown field), 400 for a well-formed but unacceptable request,
503 when no engine could speak.

As AgentCore's (agentcore/app.py): the routes live on a module-level router and read the service
and settings from `request.app.state`; `create_app` only wires the state, the handler and the router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from synapscribe.tts.fallback import AllEnginesFailedError
from synapscribe.tts.service import SpeechService
from synapscribe.tts.settings import TtsSettings
from synapscribe.tts.voices import OPENAI_VOICE_ALIASES, VOICES, UnknownVoiceError, resolve_voice

SUPPORTED_FORMATS = ("mp3",)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str
    voice: str | None = None
    response_format: str = "mp3"
    model: str | None = None  # accepted for OpenAI compatibility, ignored


def _error(
    status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param}}, status_code=status)


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """A malformed body as OpenAI's 422, naming the first bad field."""
    problems = []
    param = None
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return _error(422, "invalid request: the body is not valid JSON")
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = param or (loc[0] if loc else None)
        problems.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return _error(422, "invalid request: " + "; ".join(problems), param)


def _speech(request: Request) -> SpeechService:
    speech: SpeechService = request.app.state.speech
    return speech


def _settings(request: Request) -> TtsSettings:
    settings: TtsSettings = request.app.state.settings
    return settings


router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict[str, object]:
    speech = _speech(request)
    return {
        "status": "ok",
        "engines": speech.chain.status(),
        "cache": {
            "entries": len(speech.cache),
            "bytes": speech.cache.size_bytes,
            "maxBytes": speech.cache.max_bytes,
            "hits": speech.cache.hits,
            "misses": speech.cache.misses,
        },
    }


@router.get("/v1/voices")
async def voices(request: Request) -> dict[str, object]:
    default = _settings(request).default_voice
    return {
        "voices": list(VOICES),
        "default": default,
        "aliases": {name: default for name in sorted(OPENAI_VOICE_ALIASES)},
    }


@router.post("/v1/audio/speech", response_model=None)
async def audio_speech(body: SpeechRequest, request: Request) -> Response:
    settings = _settings(request)
    text = " ".join(body.input.split())
    if not text:
        return _error(400, "input is empty: give the text to speak", "input")
    if len(text) > settings.max_input_chars:
        return _error(
            400,
            f"input is {len(text)} characters; the maximum is {settings.max_input_chars}",
            "input",
        )
    if body.response_format not in SUPPORTED_FORMATS:
        return _error(
            400,
            f"response_format {body.response_format[:20]!r} is not supported; use "
            + " or ".join(SUPPORTED_FORMATS),
            "response_format",
        )
    try:
        voice = resolve_voice(body.voice or settings.default_voice, settings.default_voice)
    except UnknownVoiceError as exc:
        return _error(400, str(exc), "voice")
    try:
        result = await _speech(request).speak(text, voice)
    except AllEnginesFailedError as exc:
        return _error(503, str(exc), None, "engine_unavailable")
    return Response(
        content=result.audio,
        media_type="audio/mpeg",
        headers={"X-TTS-Engine": result.engine, "X-TTS-Cache": "hit" if result.cache_hit else "miss"},
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.speech.close()


def create_app(settings: TtsSettings, service: SpeechService | None = None) -> FastAPI:
    """The TTS app: `service` (tests hand in one with their engines) or one built from `settings`."""
    app = FastAPI(
        title="SynapScribe TTS",
        lifespan=_lifespan,
        exception_handlers={RequestValidationError: invalid_request},
    )
    app.state.settings = settings
    app.state.speech = service if service is not None else SpeechService.from_settings(settings)
    app.include_router(router)
    return app
