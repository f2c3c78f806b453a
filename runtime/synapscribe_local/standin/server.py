"""The stand-in's HTTP app: vLLM's OpenAI-compatible endpoints, shapes and refusals.

As AgentCore's and TTS's apps: the routes live on a module-level router and read the engine
(serving.EngineState) and the API key from `request.app.state`, like vLLM's api_router modules over
its serving classes; `create_app(config)` only wires the state, the guard and the router.
`synapscribe standin` serves it with uvicorn.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from synapscribe_local.standin.chat_request import check_limits, parse_chat_request
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.errors import StandinError
from synapscribe_local.standin.serving import (
    EngineState,
    Generation,
    completion,
    metrics_text,
    stream,
    tokenize_prompt,
)


async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StandinError(f"the request body is not valid JSON: {exc}") from None


def _engine(request: Request) -> EngineState:
    engine: EngineState = request.app.state.engine
    return engine


async def refuse(_request: Request, exc: StandinError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Like vLLM's --api-key: only /v1/* is guarded."""
    api_key: str | None = request.app.state.api_key
    if api_key and request.url.path.startswith("/v1"):
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
    return await call_next(request)


router = APIRouter()


@router.get("/health")
async def health() -> Response:
    return Response(status_code=200)


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": "stand-in"}


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    config = _engine(request).config
    return {
        "object": "list",
        "data": [
            {
                "id": config.served_name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "vllm",
                "root": config.model_path,
                "parent": None,
                "max_model_len": config.max_model_len,
                "permission": [],
            }
        ],
    }


@router.post("/tokenize")
async def tokenize(request: Request) -> dict[str, Any]:
    engine = _engine(request)
    prompt = tokenize_prompt(await json_body(request), engine.config, engine.mm_cache)
    return {
        "count": len(prompt),
        "max_model_len": engine.config.max_model_len,
        "tokens": prompt.token_ids,
        "token_strs": None,
    }


@router.get("/metrics")
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(metrics_text(_engine(request)), media_type="text/plain; version=0.0.4")


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> Response:
    engine = _engine(request)
    chat = parse_chat_request(await json_body(request), engine.config, engine.mm_cache)
    prompt = chat.render()
    max_tokens = check_limits(chat, prompt, engine.config)
    # vLLM's multimodal cache counters see only the requests its engine admits.
    engine.mm_cache.lookup_and_insert([item.digest for item in chat.audio_items], chat.audio_items)
    generation = Generation(engine, chat, prompt, max_tokens)
    if chat.stream:
        return StreamingResponse(stream(generation), media_type="text/event-stream")
    return JSONResponse(await completion(generation))


def create_app(config: StandinConfig, api_key: str | None = None) -> FastAPI:
    app = FastAPI(
        title="SynapScribe model stand-in",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        exception_handlers={StandinError: refuse},
    )
    app.state.engine = EngineState.fresh(config)
    app.state.api_key = api_key
    app.middleware("http")(guard)
    app.include_router(router)
    return app
