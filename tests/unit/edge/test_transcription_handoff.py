"""The validation Lambda's handoff to AgentCore in transcript mode: the client hears
`transcribing` before AgentCore is asked, and no failure of the handoff (refused, unreachable,
unanswered) ever moves the lecture back to `pending`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.validate_lecture import MAX_HANDOFF_FAILURES, TranscriptionNotStarted

from .edge_support import (
    CONN,
    AgentCoreRecorder,
    closed_port_url,
    exists,
    lecture_pushes,
    pushed,
    upload,
    validate,
)


@dataclass
class SlowAgentCore:
    """A real HTTP server in AgentCore's place that answers `status` after `delay` seconds and
    records, for each request, the `lecture` statuses the client had been sent by then."""

    url: str = ""
    status: int = 202
    delay: float = 0.0
    seen_before: list[list[str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def slow_server() -> Iterator[SlowAgentCore]:
    state = SlowAgentCore()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.seen_before.append([m["status"] for m in pushed(CONN) if m["type"] == "lecture"])
            time.sleep(state.delay)
            payload = json.dumps({"detail": "from the test"}).encode()
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (the timeout case)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow(
    slow_server: SlowAgentCore, deps: EdgeDeps, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlowAgentCore]:
    slow_server.status, slow_server.delay = 202, 0.0
    slow_server.seen_before.clear()
    monkeypatch.setattr(
        deps,
        "settings",
        deps.settings.model_copy(update={"agentcore_url": slow_server.url, "agentcore_timeout_seconds": 0.5}),
    )
    yield slow_server


def _status(deps: EdgeDeps, lecture_id: str) -> dict[str, Any]:
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None
    return item


def test_client_hears_transcribing_before_agentcore_is_asked(
    deps: EdgeDeps, audio: dict[str, Path], slow: SlowAgentCore
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    assert validate(deps, key)["outcome"] == "transcribing"
    assert slow.seen_before == [["transcribing"]]
    item = _status(deps, lecture_id)
    assert item["status"] == "transcribing" and item["handoffAccepted"] is True


def test_unanswered_handoff_stays_transcribing_and_the_retry_asks_again(
    deps: EdgeDeps, audio: dict[str, Path], slow: SlowAgentCore
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    slow.delay = 1.0  # longer than the edge's 0.5 s timeout: AgentCore may have taken it
    with pytest.raises(TranscriptionNotStarted, match="unconfirmed"):
        validate(deps, key)
    item = _status(deps, lecture_id)
    assert item["status"] == "transcribing" and "handoffFailures" not in item
    assert not item.get("handoffAccepted")
    # Lambda's retries: still unanswered three times, the lecture is never given up or regressed.
    for _ in range(2):
        with pytest.raises(TranscriptionNotStarted):
            validate(deps, key)
    assert _status(deps, lecture_id)["status"] == "transcribing"
    slow.delay = 0.0
    assert validate(deps, key)["outcome"] == "transcribing"
    assert len(slow.seen_before) == 4
    assert [m["status"] for m in lecture_pushes()] == ["transcribing"]
    # Accepted once: a later re-delivered event does not ask again.
    assert validate(deps, key)["outcome"] == "duplicate"
    assert len(slow.seen_before) == 4
    assert exists(deps, key)


def test_refused_handoff_rejects_the_lecture_with_a_reason(
    deps: EdgeDeps, audio: dict[str, Path], slow: SlowAgentCore
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    slow.status = 409
    result = validate(deps, key)
    assert result["outcome"] == "rejected" and "refused (409)" in result["reason"]
    item = _status(deps, lecture_id)
    assert item["status"] == "rejected" and item["reason"] == result["reason"]
    assert [m["status"] for m in lecture_pushes()] == ["transcribing", "rejected"]
    assert lecture_pushes()[-1]["reason"] == result["reason"]
    assert not exists(deps, key)
    assert validate(deps, key)["outcome"] == "missing"  # a re-delivered event changes nothing


def test_unreachable_agentcore_is_retried_then_the_lecture_is_rejected(
    deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    monkeypatch.setattr(
        deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()})
    )
    for attempt in range(1, MAX_HANDOFF_FAILURES):
        with pytest.raises(TranscriptionNotStarted, match="cannot be reached"):
            validate(deps, key)
        item = _status(deps, lecture_id)
        assert item["status"] == "transcribing" and item["handoffFailures"] == attempt
    result = validate(deps, key)
    assert result["outcome"] == "rejected" and "could not be reached" in result["reason"]
    assert "Upload it again" in result["reason"]
    assert _status(deps, lecture_id)["status"] == "rejected"
    assert [m["status"] for m in lecture_pushes()] == ["transcribing", "rejected"]
    assert not exists(deps, key)
    assert agentcore.requests == []


def test_busy_agentcore_counts_as_a_failed_handoff(
    deps: EdgeDeps, audio: dict[str, Path], slow: SlowAgentCore
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    slow.status = 503
    with pytest.raises(TranscriptionNotStarted, match="503"):
        validate(deps, key)
    assert _status(deps, lecture_id)["handoffFailures"] == 1
    slow.status = 202
    assert validate(deps, key)["outcome"] == "transcribing"
    item = _status(deps, lecture_id)
    assert item["status"] == "transcribing" and item["handoffAccepted"] is True
