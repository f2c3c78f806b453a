"""The vLLM server `synapscribe bench engine` measures, over HTTP: its model list, its counters
(`/metrics`), `/tokenize`, and one streamed chat completion timed to its first token."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from synapscribe.agentcore import prompts
from synapscribe.agentcore.vllm_client import is_cache_miss

from synapscribe_ops.bench.vllm_metrics import parse_metrics

#: vLLM's counters (V1 engine): prefix cache in tokens, multimodal (processor) cache in items.
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
MM_QUERIES = "vllm:mm_cache_queries_total"
MM_HITS = "vllm:mm_cache_hits_total"
COUNTERS = (PREFIX_QUERIES, PREFIX_HITS, MM_QUERIES, MM_HITS)
#: vLLM updates its counters when the engine core reports the step: wait this long for them.
METRICS_SETTLE_SECONDS = 3.0


class EngineBenchError(Exception):
    """The server cannot be benchmarked (unreachable, no such model, a refused request)."""


class CacheMissError(EngineBenchError):
    """vLLM does not hold an item sent by its uuid alone (HTTP 400 "Cache miss ...")."""


def server_root(url: str) -> str:
    """`http://host:port/v1` or `http://host:port/` -> `http://host:port`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/").removesuffix("/v1"), "", ""))


class Engine:
    """An HTTP client of one vLLM server; every failure is an EngineBenchError naming the URL."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        self.root = server_root(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=self.root, headers=headers, timeout=httpx.Timeout(timeout, connect=5)
        )

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: bytes) -> httpx.Response:
        try:
            response = self.http.post(path, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise EngineBenchError(f"{self.root}{path}: {exc!r}") from None
        if response.status_code != 200:
            raise EngineBenchError(
                f"{self.root}{path} answered {response.status_code}: {response.text[:400]}"
            )
        return response

    def models(self) -> list[dict[str, Any]]:
        try:
            response = self.http.get("/v1/models")
            response.raise_for_status()
            data = response.json()["data"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EngineBenchError(
                f"{self.root}/v1/models: not a vLLM server's model list ({exc!r})"
            ) from None
        return [m for m in data if isinstance(m, dict)]

    def counters(self) -> dict[str, float]:
        try:
            response = self.http.get("/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise EngineBenchError(f"{self.root}/metrics: {exc!r}") from None
        return parse_metrics(response.text)

    def counters_after(self, before: dict[str, float], prompt_tokens: int | None) -> dict[str, float]:
        """/metrics once the turn's prefix-cache query (of its prompt tokens) is counted."""
        deadline = time.monotonic() + METRICS_SETTLE_SECONDS
        while True:
            after = self.counters()
            queried = after.get(PREFIX_QUERIES, 0.0) - before.get(PREFIX_QUERIES, 0.0)
            if (prompt_tokens is not None and queried >= prompt_tokens) or time.monotonic() > deadline:
                return after
            time.sleep(0.05)

    def tokenize(self, model: str, messages: list[dict[str, Any]]) -> int:
        body = {"model": model, "messages": prompts.wire_messages(messages), "add_generation_prompt": True}
        count = self._post("/tokenize", json.dumps(body).encode()).json().get("count")
        if not isinstance(count, int):
            raise EngineBenchError(f"{self.root}/tokenize returned no count")
        return count

    def stream(self, body: bytes) -> tuple[float, float, int | None, str]:
        """One streamed chat completion: (ms to the first token, ms in all, prompt tokens, text)."""
        started = time.perf_counter()
        first: float | None = None
        usage: int | None = None
        pieces: list[str] = []
        try:
            with self.http.stream(
                "POST", "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
            ) as response:
                if response.status_code != 200:
                    response.read()
                    if response.status_code == 400 and is_cache_miss(response.text):
                        raise CacheMissError(response.text[:400])
                    raise EngineBenchError(
                        f"chat completion answered {response.status_code}: {response.text[:400]}"
                    )
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            first = first if first is not None else time.perf_counter()
                            pieces.append(text)
                    if chunk.get("usage"):
                        usage = chunk["usage"].get("prompt_tokens")
        except httpx.HTTPError as exc:
            raise EngineBenchError(f"chat completion: {exc!r}") from None
        end = time.perf_counter()
        ttft = (first if first is not None else end) - started
        return ttft * 1000, (end - started) * 1000, usage, "".join(pieces)
