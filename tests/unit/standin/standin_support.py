"""Helpers of the stand-in tests: the app behind an in-process HTTP client, chat bodies, metrics."""

from __future__ import annotations

import re
from typing import Any

import httpx
from synapscribe_local.standin.config import StandinConfig
from synapscribe_local.standin.server import create_app


def make_client(config: StandinConfig, api_key: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(config, api_key=api_key))
    return httpx.AsyncClient(transport=transport, base_url="http://standin")


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def chat(config: StandinConfig, content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": config.served_name, "messages": [{"role": "user", "content": content}], **extra}
