"""vLLM's too-large refusals (HTTP 400, as the real engine words them) become UpstreamTooLargeError
of the right kind, which the pipeline answers `too_large`; other 400s stay UpstreamRejectedError."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from synapscribe.agentcore.errors import too_large_error
from synapscribe.agentcore.vllm_client import (
    UpstreamRejectedError,
    UpstreamTooLargeError,
    VllmClient,
    too_large_kind,
)


def _bad_request(message: str, param: str | None = None) -> openai.BadRequestError:
    body = {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}}
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    response = httpx2.Response(400, json=body, request=request)
    return openai.BadRequestError(message, response=response, body=body)


@pytest.mark.parametrize(
    ("message", "param", "kind"),
    [
        ("Input length (16556) exceeds model's maximum context length (16384).", None, "context"),
        (
            "This model's maximum context length is 16384 tokens. However, you requested 17000 tokens",
            None,
            "context",
        ),
        ("The prompt is too long for this model", "input_tokens", "context"),
        (
            "The decoder prompt contains a(n) audio item with length 2100, which exceeds the pre-allocated "
            "encoder cache size 2048. Please reduce the input size or increase the encoder cache size.",
            None,
            "encoder_cache",
        ),
        ("At most 20 audio(s) may be provided in one prompt.", None, "items"),
        ("Expected audio data, got garbage", None, None),
        ("At most 3 retries", None, None),
    ],
)
def test_the_engine_messages_are_classified(message: str, param: str | None, kind: str | None) -> None:
    assert too_large_kind(message, param) == kind


async def test_a_too_large_refusal_is_a_too_large_error_naming_it() -> None:
    client = VllmClient("http://127.0.0.1:1/v1", "m", None, 1.0)
    try:
        err = client._upstream(
            _bad_request("Input length (16556) exceeds model's maximum context length (16384).")
        )
        assert isinstance(err, UpstreamTooLargeError) and err.kind == "context"
        message = too_large_error("r-1", err)
        assert message.code == "too_large" and message.requestId == "r-1"
        assert "do not fit the model's context" in message.message and "16556" in message.message
        other = client._upstream(_bad_request("Expected audio data, got garbage"))
        assert type(other) is UpstreamRejectedError
    finally:
        await client.aclose()


async def test_a_refusal_inside_the_stream_is_classified_too() -> None:
    """vLLM sends what it finds after the stream began as `data: {"error": {...}}` in a 200 response;
    the openai client raises a plain APIError with that body."""
    client = VllmClient("http://127.0.0.1:1/v1", "m", None, 1.0)
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    encoder = {
        "message": "The decoder prompt contains a(n) audio item with 2250 embedding tokens, which exceeds "
        "the pre-allocated encoder cache size 2048.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    try:
        err = client._upstream(openai.APIError(encoder["message"], request, body=encoder))
        assert isinstance(err, UpstreamTooLargeError) and err.kind == "encoder_cache"
        message = too_large_error("r-2", err)
        assert message.code == "too_large" and "longer than the model takes in one piece" in message.message
        bad = {**encoder, "message": "Expected audio data"}
        assert type(client._upstream(openai.APIError("x", request, body=bad))) is UpstreamRejectedError
        dead = {**encoder, "message": "engine core died", "code": 500, "type": "InternalServerError"}
        assert type(client._upstream(openai.APIError("x", request, body=dead))).__name__ == "UpstreamError"
    finally:
        await client.aclose()


def _sse_app(*events: str) -> Any:
    """An ASGI model server whose chat completion streams `events` (each a `data:` payload)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http" and scope["path"] == "/v1/chat/completions"
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in events:
            await send(
                {"type": "http.response.body", "body": f"data: {event}\n\n".encode(), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})

    return app


def _chunk(text: str) -> str:
    return json.dumps(
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    )


async def _stream(*events: str) -> tuple[list[str], Exception | None]:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=_sse_app(*events)))
    client = VllmClient("http://vllm.test/v1", "m", None, 5.0, http_client=http)
    pieces: list[str] = []
    try:
        async for piece in client.stream_answer([{"role": "user", "content": "hi"}], 16):
            pieces.append(piece)
    except Exception as exc:
        return pieces, exc
    finally:
        await client.aclose()
    return pieces, None


async def test_the_stream_s_pieces_come_out_in_order_until_done() -> None:
    role_only = json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    pieces, error = await _stream(role_only, _chunk("Rubisco "), _chunk("fixes CO2."), "[DONE]")
    assert (pieces, error) == (["Rubisco ", "fixes CO2."], None)


async def test_a_refusal_inside_a_streamed_answer_raises_too_large() -> None:
    """Through stream_answer itself: the pieces before the refusal, then UpstreamTooLargeError."""
    encoder = {
        "message": "The decoder prompt contains a(n) audio item with 2250 embedding tokens, which exceeds "
        "the pre-allocated encoder cache size 2048.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    pieces, error = await _stream(_chunk("Rubisco "), json.dumps({"error": encoder}), _chunk("never"))
    assert pieces == ["Rubisco "]
    assert isinstance(error, UpstreamTooLargeError) and error.kind == "encoder_cache", error
    _, dead = await _stream(json.dumps({"error": {"message": "engine core died", "code": 500}}))
    assert type(dead).__name__ == "UpstreamError" and "engine core died" in str(dead)


async def test_a_refusal_before_the_stream_raises_too_large_through_stream_answer() -> None:
    """HTTP 400 with vLLM's error body (the context check runs before streaming starts)."""
    message = "Input length (16556) exceeds model's maximum context length (16384)."
    body = json.dumps({"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    client = VllmClient("http://vllm.test/v1", "m", None, 5.0, http_client=http)
    try:
        with pytest.raises(UpstreamTooLargeError) as raised:
            async for _ in client.stream_answer([{"role": "user", "content": "hi"}], 16):
                pass
        assert raised.value.kind == "context" and "16556" in str(raised.value)
    finally:
        await client.aclose()
