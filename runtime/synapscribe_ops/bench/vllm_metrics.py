"""vLLM's metrics (Prometheus text), read where the operator can reach them: counters summed by
name, the KV cache's use, and a counter's growth between two readings."""

from __future__ import annotations

import re

import httpx


def parse_metrics(text: str) -> dict[str, float]:
    """Sum of each metric's samples, by name (labels dropped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFNa]+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


class Metrics:
    """vLLM's `/metrics` at `url`, read where the operator can reach them; `problem` says why not."""

    def __init__(self, url: str | None, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.problem: str | None = None if url else "no --metrics-url given"

    async def read(self) -> dict[str, float] | None:
        if not self.url:
            return None
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(self.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.problem = f"{self.url}: {exc}"
            return None
        return parse_metrics(response.text)


def counter(m: dict[str, float] | None, name: str) -> float | None:
    if m is None:
        return None
    return m.get(name, m.get(name.removesuffix("_total")))


def kv_usage(m: dict[str, float] | None) -> float | None:
    if m is None:
        return None
    for name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        if name in m:
            return m[name]
    return None


def counter_delta(before: dict[str, float] | None, after: dict[str, float] | None, name: str) -> float | None:
    b, a = counter(before, name), counter(after, name)
    return None if a is None or b is None else a - b
