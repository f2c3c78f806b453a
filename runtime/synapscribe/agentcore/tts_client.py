"""The TTS service (`POST /v1/audio/speech`, OpenAI's speech API shape)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from synapscribe.agentcore.vllm_client import UpstreamError


@dataclass(frozen=True)
class Speech:
    audio: bytes
    engine: str
    cache_hit: bool


class TtsClient:
    def __init__(self, base_url: str, timeout: float, http_client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = f"the speech service (TTS at {self.base_url})"
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=32),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def speak(self, text: str, voice: str) -> Speech:
        try:
            resp = await self._http.post(
                f"{self.base_url}/v1/audio/speech",
                json={"input": text, "voice": voice, "response_format": "mp3"},
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.name} cannot be reached ({type(exc).__name__})") from None
        if resp.status_code != 200:
            raise UpstreamError(f"{self.name} answered HTTP {resp.status_code}")
        if not resp.content:
            raise UpstreamError(f"{self.name} returned no audio")
        return Speech(
            audio=resp.content,
            engine=resp.headers.get("X-TTS-Engine", "unknown"),
            cache_hit=resp.headers.get("X-TTS-Cache", "") == "hit",
        )

    async def healthy(self) -> bool:
        try:
            resp = await self._http.get(f"{self.base_url}/health")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200
