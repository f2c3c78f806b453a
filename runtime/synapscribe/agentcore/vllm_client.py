"""The model server (vLLM's OpenAI-compatible API) through the pinned `openai` client."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from synapscribe.agentcore.prompts import transcription_messages, wire_messages

log = logging.getLogger(__name__)


class UpstreamError(Exception):
    """A service AgentCore depends on cannot be reached or failed; the message names it."""


class UpstreamRejectedError(Exception):
    """The model server refused a request as malformed (a bug on our side, not an outage)."""


class UpstreamTooLargeError(UpstreamRejectedError):
    """The model server refused a request as too large for it: over its context (`context`), an
    audio item over its encoder cache (`encoder_cache`), or more audio items than it takes (`items`)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class MediaCacheMissError(UpstreamRejectedError):
    """The model server no longer holds (or never held) an item sent by its uuid alone: vLLM 0.32
    answers HTTP 400 "Cache miss for audio at index 0 but data is not provided." The request is
    sent again with the items' data (agentcore/media_refs.py)."""


#: How vLLM words a multimodal item sent by uuid that its processor cache does not hold.
CACHE_MISS_MESSAGE = ("cache miss for", "data is not provided")


def is_cache_miss(message: str) -> bool:
    low = message.lower()
    return all(needle in low for needle in CACHE_MISS_MESSAGE)


#: How vLLM words each too-large refusal (HTTP 400), by kind; matched case-insensitively. Seen on
#: the engine: "Input length (16556) exceeds model's maximum context length (16384)." (audio), a
#: text prompt's "This model's maximum context length is ..." with param "input_tokens" (or
#: "input_text"), "... exceeds the pre-allocated encoder cache size 2048 ..." and "At most 20
#: audio(s) may be provided in one prompt." (vLLM 0.32's input processor and renderer).
TOO_LARGE_MESSAGES: dict[str, tuple[str, ...]] = {
    "context": ("maximum context length",),
    "encoder_cache": ("encoder cache size",),
    "items": ("may be provided in one prompt", "at most "),
}


def too_large_kind(message: str, param: object = None) -> str | None:
    """Which too-large refusal a vLLM 400 is, or None when it is another refusal."""
    low = message.lower()
    if param in ("input_tokens", "input_text"):
        return "context"
    for kind, needles in TOO_LARGE_MESSAGES.items():
        if kind == "items":
            if all(n in low for n in needles) and "audio" in low:
                return kind
        elif any(n in low for n in needles):
            return kind
    return None


#: A transcription cut at max_tokens is asked again once with this many times the room.
TRANSCRIBE_RETRY_FACTOR = 4
#: Appended to a voice question's transcript that stayed cut short.
TRUNCATED_MARK = "[transcript cut short]"


@dataclass(frozen=True)
class Transcription:
    text: str
    #: False when the model stopped at max_tokens even after the retry
    complete: bool
    #: the max_tokens of the last request
    max_tokens: int


def answer_piece(line: str, request: httpx2.Request) -> str:
    """The answer text of one line of a chat completion's event stream ("" for anything else).

    vLLM writes each event as one `data: {json}` line and ends with `data: [DONE]`. A refusal
    found after the stream began comes as `data: {"error": {...}}`: raised as openai.APIError,
    as the openai client's own stream raises it, so VllmClient._upstream classifies it alike.
    """
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return ""
    event = json.loads(data)
    if not isinstance(event, dict):
        return ""
    if event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        raise openai.APIError(message, request, body=error)
    return "".join(
        choice["delta"].get("content") or ""
        for choice in event.get("choices") or ()
        if isinstance(choice, dict) and isinstance(choice.get("delta"), dict)
    )


class VllmClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        http_client: httpx2.AsyncClient | None = None,  # the openai client's own httpx fork
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"the model server (vLLM at {self.base_url})"
        self._api_key = api_key
        self._context_len: int | None = None
        self._http = http_client or httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64),
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 3.0)),
        )
        self._client = AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or "EMPTY",
            max_retries=0,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 3.0)),
            http_client=self._http,
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    def _upstream(self, exc: Exception) -> Exception:
        if isinstance(exc, openai.APITimeoutError):
            return UpstreamError(f"{self.name} did not answer in time")
        if isinstance(exc, openai.APIConnectionError):
            return UpstreamError(f"{self.name} cannot be reached")
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code >= 500 or exc.status_code in (404, 429, 401, 403):
                return UpstreamError(f"{self.name} answered HTTP {exc.status_code}")
            body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
            param = body.get("param") if isinstance(body, dict) else None
            said = body.get("message") if isinstance(body, dict) else None
            said = said if isinstance(said, str) else exc.message
            if exc.status_code == 400 and is_cache_miss(said):
                return MediaCacheMissError(f"{self.name} does not hold a lecture item: {said}")
            kind = too_large_kind(said, param) if exc.status_code == 400 else None
            if kind is not None:
                return UpstreamTooLargeError(kind, f"{self.name} refused the request as too large: {said}")
            return UpstreamRejectedError(
                f"{self.name} refused the request: HTTP {exc.status_code}: {exc.message}"
            )
        if isinstance(exc, openai.APIError):
            # An error inside a 200 stream (`data: {"error": {...}}`): vLLM refuses this way what it
            # finds once streaming has begun, e.g. an audio item over the encoder cache.
            return self._stream_error(exc)
        if isinstance(exc, httpx2.HTTPError):
            return UpstreamError(f"{self.name} failed: {type(exc).__name__}")
        return exc

    def _stream_error(self, exc: openai.APIError) -> Exception:
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message")
        said = message if isinstance(message, str) else str(exc.message)
        if is_cache_miss(said):
            return MediaCacheMissError(f"{self.name} does not hold a lecture item: {said}")
        kind = too_large_kind(said, body.get("param"))
        if kind is not None:
            return UpstreamTooLargeError(kind, f"{self.name} refused the request as too large: {said}")
        if body.get("code") == 400:
            return UpstreamRejectedError(f"{self.name} refused the request: {said}")
        return UpstreamError(f"{self.name} failed while answering: {said}")

    async def models(self) -> list[str]:
        return list(await self.served())

    async def served(self) -> dict[str, int | None]:
        """Each served model's id and its context length as vLLM reports it (None when it does not)."""
        try:
            page = await self._client.models.list()
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise self._upstream(exc) from None
        out: dict[str, int | None] = {}
        for model in page.data:
            value = getattr(model, "max_model_len", None)
            out[model.id] = value if isinstance(value, int) and value > 0 else None
        return out

    async def count_tokens(self, text: str) -> int:
        """Exact token count of `text` by the server's own tokenizer (vLLM's `POST /tokenize`)."""
        root = self.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            resp = await self._http.post(
                f"{root}/tokenize", json={"model": self.model, "prompt": text}, headers=headers
            )
        except httpx2.HTTPError as exc:
            raise self._upstream(exc) from None
        if resp.status_code != 200:
            raise UpstreamError(f"{self.name} answered HTTP {resp.status_code} to /tokenize")
        count = resp.json().get("count")
        if not isinstance(count, int):
            raise UpstreamError(f"{self.name} returned no token count")
        return count

    async def _transcribe_once(
        self, messages: list[dict[str, Any]], max_tokens: int
    ) -> tuple[str, bool, int | None]:
        """One transcription request: its text, whether it was cut at max_tokens, its prompt size."""
        try:
            resp = await self._client.chat.completions.create(
                model=self.model,
                messages=wire_messages(messages),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
            )
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise self._upstream(exc) from None
        if not resp.choices:
            raise UpstreamError(f"{self.name} returned no transcription")
        choice = resp.choices[0]
        prompt_tokens = resp.usage.prompt_tokens if resp.usage is not None else None
        return (choice.message.content or "").strip(), choice.finish_reason == "length", prompt_tokens

    async def _max_model_len(self) -> int | None:
        """The served context length as vLLM reports it on /v1/models (None when it does not)."""
        if self._context_len is None:
            try:
                page = await self._client.models.list()
            except (openai.OpenAIError, httpx2.HTTPError) as exc:
                raise self._upstream(exc) from None
            for model in page.data:
                value = getattr(model, "max_model_len", None)
                if model.id == self.model and isinstance(value, int) and value > 0:
                    self._context_len = value
        return self._context_len

    async def transcription(self, audio: bytes, fmt: str, seconds: float, max_tokens: int) -> Transcription:
        """What the audio says, by the model itself (chat completions with an audio part).

        A transcription the model stops at max_tokens (finish_reason `length`) is asked again once
        with TRANSCRIBE_RETRY_FACTOR times the room, never more than the context leaves beside the
        request's prompt; `complete` is False when even that was cut short.
        """
        messages = transcription_messages(base64.b64encode(audio).decode("ascii"), fmt, seconds)
        text, cut, prompt_tokens = await self._transcribe_once(messages, max_tokens)
        if not cut:
            return Transcription(text, True, max_tokens)
        context = await self._max_model_len()
        room = context - prompt_tokens if context is not None and prompt_tokens is not None else None
        larger = max_tokens * TRANSCRIBE_RETRY_FACTOR
        if room is not None:
            larger = min(larger, room)
        log.info(
            "a %.1f s transcription stopped at its %d-token limit; asking again with %d",
            seconds,
            max_tokens,
            larger,
        )
        if larger <= max_tokens:
            return Transcription(text, False, max_tokens)
        text, cut, _ = await self._transcribe_once(messages, larger)
        return Transcription(text, not cut, larger)

    async def transcribe(self, audio: bytes, fmt: str, seconds: float, max_tokens: int) -> str:
        """A voice question's transcript (see `transcription`). One that is still cut short is
        returned with TRUNCATED_MARK appended and logged: the answer is made from the question's
        audio itself, so only the shown and remembered wording is incomplete, and it says so."""
        result = await self.transcription(audio, fmt, seconds, max_tokens)
        if result.complete:
            return result.text
        log.warning(
            "a %.1f s question's transcription was still cut at %d tokens; returned marked as cut short",
            seconds,
            result.max_tokens,
        )
        return f"{result.text} {TRUNCATED_MARK}".strip()

    async def stream_answer(
        self, messages: Sequence[dict[str, Any]], max_tokens: int, stream_interval: int = 1
    ) -> AsyncIterator[str]:
        """The answer's text, piece by piece as the model writes it.

        The server-sent events are read as lines and decoded with json.loads (answer_pieces): the
        openai client's own stream builds a typed model for every chunk (one per token), which
        was about a quarter of AgentCore's CPU per question (py-spy over `bench pipeline`).
        `stream_interval` > 1 asks vLLM for one chunk per that many tokens (its per-request
        `stream_interval`; the first and the last chunk still come at once): fewer chunks to read.
        """
        extra = {"stream_interval": stream_interval} if stream_interval > 1 else None
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=wire_messages(messages),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.2,
                stream=True,
                extra_body=extra,
            ) as response:
                async for line in response.iter_lines():
                    piece = answer_piece(line, response.http_request)
                    if piece:
                        yield piece
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise self._upstream(exc) from None
