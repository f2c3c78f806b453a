"""A voice question longer than `limits.query_max_seconds` is `too_large`, inline and as an upload,
against the local stack; one just under the limit (and of a similar size) is answered."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stack_uploads import upload_file
from synapscribe.contract import Lecture, Session
from synapscribe.platform import load_platform
from synapscribe_local import audiogen
from synapscribe_local.process import LocalStackProcess
from synapscribe_ops.smoke.client import StackClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.needs_tool("espeak-ng", "sox", "ffmpeg"),
]

LIMITS = load_platform().limits
INLINE_MAX_BYTES = 64 * 1024  # the contract's limit on an inline clip, decoded


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    with LocalStackProcess() as running:
        yield running


def question(path: Path, seconds: float) -> bytes:
    """Generated speech of `seconds`, at a bit rate low enough to send inline."""
    data = audiogen.make_lecture(path, seconds / 60, bitrate_kbps=8).path.read_bytes()
    assert len(data) < INLINE_MAX_BYTES, "the clip must be small enough that only its length is over"
    return data


@pytest.fixture
async def session(stack: LocalStackProcess) -> AsyncIterator[tuple[StackClient, str]]:
    client = await StackClient.connect(stack.url, identity="too-long-student", label="student")
    try:
        lecture_id = (
            await upload_file(client, audiogen.cached_lecture(1.0).read_bytes(), "lecture.mp3")
        ).uploadId
        ready = await client.wait_type(
            "lecture",
            where=lambda r: bool(
                r.data and r.data.get("lectureId") == lecture_id and r.data["status"] == "ready"
            ),
            within=60,
        )
        assert isinstance(ready.message, Lecture)
        started = await client.request({"action": "startSession", "lectureId": lecture_id}, "session")
        assert isinstance(started.message, Session), started.raw
        yield client, started.message.sessionId
    finally:
        await client.close()


async def test_a_voice_question_over_the_limit_is_too_large(
    session: tuple[StackClient, str], tmp_path: Path
) -> None:
    client, session_id = session
    limit = LIMITS.query_max_seconds
    too_long = question(tmp_path / "too-long.mp3", limit + 5)
    just_under = question(tmp_path / "under.mp3", limit - 5)
    # Similar sizes: what decides is the length, not the bytes.
    assert len(just_under) > 0.7 * len(too_long)

    inline = await client.query(
        session_id, within=30, voice=False, requestId="long-inline", audio=base64.b64encode(too_long).decode()
    )
    assert inline.error is not None and inline.answer is None, [m.raw for m in inline.messages]
    assert inline.error.code == "too_large" and inline.error.requestId == "long-inline"
    assert f"{limit + 5} s long" in inline.error.message and f"limit is {limit} s" in inline.error.message
    assert [m.type for m in inline.messages] == ["error"], "no transcript or answer for a refused question"

    # The same clip as a `query` upload (under that upload's byte limit) is refused the same way.
    upload = await upload_file(client, too_long, "q.mp3", kind="query")
    assert len(too_long) <= upload.maxBytes
    uploaded = await client.query(
        session_id, within=30, voice=False, requestId="long-upload", queryKey=upload.key
    )
    assert uploaded.error is not None and uploaded.error.code == "too_large", [
        m.raw for m in uploaded.messages
    ]
    assert uploaded.error.requestId == "long-upload"

    # The connection and the session live on: a question under the limit is heard and answered.
    ok = await client.query(
        session_id, within=60, voice=False, requestId="under", audio=base64.b64encode(just_under).decode()
    )
    assert ok.error is None and ok.answer is not None, [m.raw for m in ok.messages]
    assert ok.transcript and ok.answer.text
    assert client.is_open
