"""Handing work to AgentCore over HTTP (urllib: the Lambda bundle carries no HTTP library).

AgentCore answers 202 at once and streams results to the client's connection, so a short
timeout is enough; the handlers never wait for an answer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AgentCoreError(Exception):
    """AgentCore did not accept the job."""


class AgentCoreUnavailable(AgentCoreError):
    """Unreachable, timed out, or answered 5xx other than 503."""


class AgentCoreNoHost(AgentCoreUnavailable):
    """The load balancer answered for AgentCore: no host is registered (the fleet is at zero)."""


class AgentCoreTimeout(AgentCoreUnavailable):
    """No answer within the timeout: AgentCore may have accepted the job all the same."""


class AgentCoreBusy(AgentCoreError):
    """503 or 429: at capacity."""


class AgentCoreRejected(AgentCoreError):
    """A 4xx other than 429: the job itself was refused."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"AgentCore answered {status}: {detail}")
        self.status = status
        self.detail = detail


def post_job(base_url: str, path: str, body: dict[str, Any], timeout: float) -> int:
    """POST `body` as JSON to AgentCore; returns the (2xx) status or raises AgentCoreError."""
    url = base_url.rstrip("/") + path
    request = urllib.request.Request(  # noqa: S310 (the URL is configuration, http(s) only)
        url,
        data=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        if exc.code == 503 and str(exc.headers.get("Server", "")).startswith("awselb"):
            # The balancer's own 503: its target group has no registered target (Elastic Load
            # Balancing User Guide, "Troubleshoot your Application Load Balancers": HTTP 503).
            raise AgentCoreNoHost(f"AgentCore's balancer has no registered host: {detail[:200]}") from None
        if exc.code in (429, 503):
            raise AgentCoreBusy(f"AgentCore answered {exc.code}: {detail[:200]}") from None
        if exc.code >= 500:
            raise AgentCoreUnavailable(f"AgentCore answered {exc.code}: {detail[:200]}") from None
        raise AgentCoreRejected(exc.code, detail[:500]) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            raise AgentCoreTimeout(
                f"AgentCore at {base_url} did not answer within {timeout:g} s: {reason}"
            ) from None
        raise AgentCoreUnavailable(f"AgentCore at {base_url} cannot be reached: {reason}") from None


def transcription_request(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The path and body that ask AgentCore to transcribe the lecture `item`."""
    return f"/v1/lectures/{item['lectureId']}/transcribe", {"connectionId": item.get("connectionId") or None}


def request_transcription(base_url: str, item: dict[str, Any], timeout: float) -> int:
    """Ask AgentCore to transcribe the lecture `item` (the validator's hand-off and the sweeper's
    resume); AgentCore's own claim makes a repeated request harmless."""
    path, body = transcription_request(item)
    return post_job(base_url, path, body, timeout)
