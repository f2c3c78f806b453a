"""The model server (vLLM's OpenAI-compatible API) through the pinned `openai` client."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from synapscribe.agentcore.prompts import transcription_messages, wire_messages

log = logging.getLogger(__name__)


class UpstreamError(Exception):
    """A service AgentCore depends on cannot be reached or failed; the message names it."""


class UpstreamRejectedError(Exception):
    """The model server refused a request as malformed (a bug on our side, not an outage)."""


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
            return UpstreamRejectedError(
                f"{self.name} refused the request: HTTP {exc.status_code}: {exc.message}"
            )
        if isinstance(exc, httpx2.HTTPError):
            return UpstreamError(f"{self.name} failed: {type(exc).__name__}")
        return exc

    async def models(self) -> list[str]:
        try:
            page = await self._client.models.list()
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise self._upstream(exc) from None
        return [m.id for m in page.data]

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

    async def transcribe(self, audio: bytes, fmt: str, seconds: float, max_tokens: int) -> str:
        """What the audio says, by the model itself (chat completions with an audio part)."""
        messages = transcription_messages(base64.b64encode(audio).decode("ascii"), fmt, seconds)
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
        return (resp.choices[0].message.content or "").strip()

    async def stream_answer(self, messages: Sequence[dict[str, Any]], max_tokens: int) -> AsyncIterator[str]:
        """The answer's text, piece by piece as the model writes it."""
        try:
            stream: AsyncStream[ChatCompletionChunk] = await self._client.chat.completions.create(  # type: ignore[assignment]
                model=self.model,
                messages=wire_messages(messages),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.2,
                stream=True,
            )
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield choice.delta.content
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise self._upstream(exc) from None
