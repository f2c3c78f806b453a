"""The lecture validation Lambda on moto with real generated audio."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from mutagen.id3 import APIC, ID3
from synapscribe import keys
from synapscribe.edge import validate_lecture
from synapscribe.edge.config import EdgeDeps
from synapscribe.edge.s3_ranged import ReadBudgetExceeded, S3RangedFile
from synapscribe.edge.validate_lecture import TranscriptionNotStarted, handle
from synapscribe.edge.websocket_handler import handle as ws_handle

from .edge_support import (
    CONN,
    AgentCoreRecorder,
    closed_port_url,
    exists,
    lecture_pushes,
    pushed,
    s3_event,
    upload,
    validate,
    ws_event,
)

# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("mp3", "audio/mpeg"),
        ("wav", "audio/wav"),
        ("m4a", "audio/mp4"),
        ("ogg", "audio/ogg"),
        ("flac", "audio/flac"),
        ("aac", "audio/aac"),
        ("webm", "audio/webm"),
    ],
)
def test_short_recording_is_ready_in_audio_mode(
    deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder, kind: str, content_type: str
) -> None:
    data = audio[kind].read_bytes()
    lecture_id, key = upload(deps, data, content_type, f"talk.{kind}")
    result = validate(deps, key)
    assert result["outcome"] == "ready", result
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None
    assert item["status"] == "ready" and item["contextMode"] == "audio" and item["format"] == kind
    assert 2.0 < item["durationSeconds"] < 6.0  # espeak-ng speaks the sentence in about 3 s
    assert item["sizeBytes"] == len(data)
    assert lecture_pushes()[-1] == {
        "type": "lecture",
        "lectureId": lecture_id,
        "status": "ready",
        "durationSeconds": item["durationSeconds"],
        "contextMode": "audio",
    }
    assert agentcore.requests == []
    assert exists(deps, key)


def test_long_files_straddle_the_limits(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    from mutagen.mp3 import MP3

    assert deps.platform.max_audio_lecture_seconds == 552
    assert deps.platform.max_audio_lecture_seconds < MP3(audio["transcript"]).info.length
    assert MP3(audio["transcript"]).info.length < deps.platform.max_transcript_lecture_seconds
    assert MP3(audio["too_long"]).info.length > deps.platform.max_transcript_lecture_seconds


def test_long_lecture_goes_to_transcription(
    deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder
) -> None:
    data = audio["transcript"].read_bytes()
    lecture_id, key = upload(deps, data)
    result = validate(deps, key)
    assert result["outcome"] == "transcribing"
    assert 0 < result["bytesRead"] < 256 * 1024 < len(data)
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "transcribing" and item["contextMode"] == "transcript"
    assert agentcore.requests == [(f"/v1/lectures/{lecture_id}/transcribe", {"connectionId": CONN})]
    push = lecture_pushes()[-1]
    assert push["status"] == "transcribing" and push["durationSeconds"] == item["durationSeconds"]
    assert "contextMode" not in push


def test_transcription_not_started_keeps_lecture_transcribing_for_retry(
    deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    with monkeypatch.context() as m:
        m.setattr(deps, "settings", deps.settings.model_copy(update={"agentcore_url": closed_port_url()}))
        with pytest.raises(TranscriptionNotStarted):
            validate(deps, key)
    # Never back to pending (AgentCore's own update expects `transcribing`); the client was told.
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "transcribing" and item["handoffFailures"] == 1
    assert [m["status"] for m in lecture_pushes()] == ["transcribing"]
    assert validate(deps, key)["outcome"] == "transcribing"  # the retried event asks again
    assert agentcore.requests == [(f"/v1/lectures/{lecture_id}/transcribe", {"connectionId": CONN})]
    assert [m["status"] for m in lecture_pushes()] == ["transcribing"]


# --------------------------------------------------------------------------- rejected


def _rejected(deps: EdgeDeps, lecture_id: str, key: str, result: dict[str, Any]) -> str:
    assert result["outcome"] == "rejected", result
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "rejected" and item["reason"] == result["reason"]
    assert not exists(deps, key)
    push = lecture_pushes()[-1]
    assert push == {
        "type": "lecture",
        "lectureId": lecture_id,
        "status": "rejected",
        "reason": item["reason"],
        **({"durationSeconds": item["durationSeconds"]} if "durationSeconds" in item else {}),
    }
    return str(result["reason"])


def test_text_file_named_mp3(deps: EdgeDeps, agentcore: AgentCoreRecorder) -> None:
    lecture_id, key = upload(deps, b"These are my lecture notes, not a recording.\n" * 20)
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "not an audio recording" in reason and "text file" in reason and "MP3" in reason
    assert agentcore.requests == []


def test_corrupt_mp3(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    # An ID3 tag followed by noise: it announces MP3 but holds no MPEG frame.
    data = b"ID3\x04\x00\x00\x00\x00\x00\x10" + b"\x00" * 16 + bytes(range(256)) * 40
    lecture_id, key = upload(deps, data)
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "cannot be read" in reason and "damaged" in reason


def test_truncated_m4a(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    data = audio["m4a"].read_bytes()[:600]
    lecture_id, key = upload(deps, data, "audio/mp4", "talk.m4a")
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "M4A" in reason and "damaged" in reason


def test_empty_file(deps: EdgeDeps) -> None:
    lecture_id, key = upload(deps, b"")
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "empty" in reason


def test_too_long_lecture(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    lecture_id, key = upload(deps, audio["too_long"].read_bytes())
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "Split the recording" in reason and "69 minutes" in reason


def test_too_large_file(deps: EdgeDeps, audio: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data = audio["mp3"].read_bytes()
    lecture_id, key = upload(deps, data)
    limits = deps.platform.limits.model_copy(update={"lecture_max_bytes": len(data) - 1})
    monkeypatch.setattr(deps, "platform", deps.platform.model_copy(update={"limits": limits}))
    reason = _rejected(deps, lecture_id, key, validate(deps, key))
    assert "largest lecture accepted" in reason and "Compress" in reason


@pytest.mark.parametrize(
    ("kind", "content_type", "args"),
    [
        # Written to a pipe, the WebM muxer cannot go back to store the duration: like the live
        # recording of a browser's MediaRecorder (Chrome, Firefox).
        ("webm", "audio/webm", ["-c:a", "libopus", "-f", "webm"]),
        # Fragmented MP4/AAC with an empty moov, as Safari's MediaRecorder writes it.
        (
            "m4a",
            "audio/mp4",
            ["-c:a", "aac", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"],
        ),
    ],
)
@pytest.mark.needs_tool("ffmpeg")
def test_browser_recording_without_header_duration_is_ready(
    deps: EdgeDeps, audio: dict[str, Path], kind: str, content_type: str, args: list[str]
) -> None:
    import subprocess

    live = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(audio["wav"]), *args, "-"],
        check=True,
        capture_output=True,
    ).stdout
    lecture_id, key = upload(deps, live, content_type, f"live.{kind}")
    result = validate(deps, key)
    assert result["outcome"] == "ready", result
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["format"] == kind
    # Its length is read from its last frames (WebM) or fragment (MP4), to within one frame.
    wav = _wav_seconds(audio["wav"])
    assert abs(float(item["durationSeconds"]) - wav) < 0.1, (item["durationSeconds"], wav)


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def test_huge_header_is_not_read(
    deps: EdgeDeps, audio: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "art.mp3"
    path.write_bytes(audio["mp3"].read_bytes())
    tags = ID3()
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=b"\x89PNG" + b"\x01" * 300_000))
    tags.save(path)
    monkeypatch.setattr(validate_lecture, "PROBE_MAX_BYTES", 128 * 1024)
    lecture_id, key = upload(deps, path.read_bytes())
    result = validate(deps, key)
    reason = _rejected(deps, lecture_id, key, result)
    assert "header is unusually large" in reason
    assert result["bytesRead"] <= 128 * 1024


# --------------------------------------------------------------------------- idempotence, strays


def test_redelivery_is_harmless(deps: EdgeDeps, audio: dict[str, Path], agentcore: AgentCoreRecorder) -> None:
    lecture_id, key = upload(deps, audio["transcript"].read_bytes())
    assert validate(deps, key)["outcome"] == "transcribing"
    item = deps.store.get_lecture(lecture_id, "alice")
    for _ in range(2):
        assert validate(deps, key)["outcome"] == "duplicate"
    assert deps.store.get_lecture(lecture_id, "alice") == item
    assert len(agentcore.requests) == 1 and len(lecture_pushes()) == 1
    assert exists(deps, key)


def test_redelivery_after_rejection_is_harmless(deps: EdgeDeps) -> None:
    _lecture_id, key = upload(deps, b"not audio at all")
    assert validate(deps, key)["outcome"] == "rejected"
    assert validate(deps, key)["outcome"] == "missing"
    assert len(lecture_pushes()) == 1


def test_a_rejected_lectures_policy_posted_again_leaves_no_file(deps: EdgeDeps) -> None:
    """Issue 18: the same POST policy used again after the rejection reached the `duplicate`
    path and the file stayed, uncharged."""
    lecture_id, key = upload(deps, b"not audio at all")
    assert validate(deps, key)["outcome"] == "rejected"
    for _ in range(3):
        deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=b"not audio at all")
        result = validate(deps, key)
        assert result["outcome"] == "removed" and not exists(deps, key)
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "rejected"
    assert len(lecture_pushes()) == 1


def _state_tag(deps: EdgeDeps, key: str) -> str | None:
    tags = deps.s3.get_object_tagging(Bucket=deps.resources.bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tags}.get(keys.STATE_TAG)


def test_an_accepted_upload_is_promoted_from_pending(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    data = audio["mp3"].read_bytes()
    lecture_id, key = upload(deps, data)
    bucket = deps.resources.bucket
    # What the POST policy makes S3 do (moto's POST ignores the `tagging` field).
    deps.s3.put_object_tagging(
        Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": keys.STATE_TAG, "Value": keys.PENDING}]}
    )
    assert validate(deps, key)["outcome"] == "ready"
    assert _state_tag(deps, key) == keys.VALIDATED
    # The same bytes POSTed again arrive pending: promoted again, so the lifecycle spares them.
    deps.s3.put_object(Bucket=bucket, Key=key, Body=data, Tagging=f"{keys.STATE_TAG}={keys.PENDING}")
    assert validate(deps, key)["outcome"] == "duplicate"
    assert _state_tag(deps, key) == keys.VALIDATED
    assert deps.store.get_lecture(lecture_id, "alice")["status"] == "ready"  # type: ignore[index]


def test_object_replaced_after_validation_is_removed(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    lecture_id, key = upload(deps, audio["mp3"].read_bytes())
    assert validate(deps, key)["outcome"] == "ready"
    # The presigned POST is reused within its expiry with other bytes.
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=b"something else entirely")
    result = validate(deps, key)
    assert result["outcome"] == "rejected" and "replaced" in result["reason"]
    assert not exists(deps, key)
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "rejected"


@pytest.mark.parametrize(
    "key",
    [
        "lectures/alice/lec_0123456789abcdef0123456789abcdef.mp3",  # no createUpload for it
        "lectures/alice/notes.txt",
        "lectures/stray.mp3",
    ],
)
def test_object_without_pending_lecture_is_removed(deps: EdgeDeps, audio: dict[str, Path], key: str) -> None:
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=key, Body=audio["mp3"].read_bytes())
    assert validate(deps, key)["outcome"] == "removed"
    assert not exists(deps, key)


def test_object_under_another_owner_is_removed(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    lecture_id, key = upload(deps, audio["mp3"].read_bytes())
    stolen = key.replace("lectures/alice/", "lectures/bob/")
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=stolen, Body=audio["mp3"].read_bytes())
    assert validate(deps, stolen)["outcome"] == "removed"
    assert not exists(deps, stolen)
    item = deps.store.get_lecture(lecture_id, "alice")
    assert item is not None and item["status"] == "pending"


def test_other_prefixes_and_events_are_ignored(deps: EdgeDeps) -> None:
    deps.s3.put_object(Bucket=deps.resources.bucket, Key="queries/alice/q.mp3", Body=b"x")
    assert validate(deps, "queries/alice/q.mp3")["outcome"] == "ignored"
    event = s3_event(deps.resources.bucket, "lectures/alice/x.mp3", name="ObjectRemoved:Delete")
    assert handle(event, deps)["results"][0]["outcome"] == "ignored"
    assert exists(deps, "queries/alice/q.mp3")
    with pytest.raises(ValueError, match="Records"):
        handle({"nope": 1}, deps)


def test_lambda_entrypoint_and_url_encoded_key(deps: EdgeDeps, audio: dict[str, Path]) -> None:
    # A Cognito identity id ("region:uuid") in the key arrives URL-encoded in the S3 event.
    owner = "eu-west-1:0f1e2d3c-aaaa-bbbb"
    assert ws_handle(ws_event("$connect", "conn-cognito", identity=owner), deps)["statusCode"] == 200
    body = {
        "action": "createUpload",
        "kind": "lecture",
        "filename": "a b.mp3",
        "contentType": "audio/mpeg",
        "sizeBytes": 9,
    }
    ws_handle(ws_event("$default", "conn-cognito", body=json.dumps(body)), deps)
    answer = pushed("conn-cognito")[-1]
    deps.s3.put_object(Bucket=deps.resources.bucket, Key=answer["key"], Body=audio["mp3"].read_bytes())
    event = s3_event(deps.resources.bucket, answer["key"])
    assert "%3A" in event["Records"][0]["s3"]["object"]["key"]
    result = validate_lecture.handler(event, None)["results"][0]
    assert result["outcome"] == "ready" and result["lectureId"] == answer["uploadId"]
    assert pushed("conn-cognito")[-1]["status"] == "ready"


# --------------------------------------------------------------------------- ranged reader


def test_ranged_file_reads_like_a_file(deps: EdgeDeps) -> None:
    data = bytes(range(256)) * 1000
    deps.s3.put_object(Bucket=deps.resources.bucket, Key="x/blob", Body=data)
    f = S3RangedFile(
        deps.s3, deps.resources.bucket, "x/blob", len(data), block_bytes=1000, max_bytes=len(data)
    )
    ref = io.BytesIO(data)
    for offset, whence, n in [(0, 0, 10), (5000, 0, 2500), (-300, 2, 1000), (10, 1, 5), (0, 0, -1)]:
        assert f.seek(offset, whence) == ref.seek(offset, whence)
        assert f.read(n) == ref.read(n)
        assert f.tell() == ref.tell()
    assert f.read(10) == b""


def test_ranged_file_caps_what_it_fetches(deps: EdgeDeps) -> None:
    data = b"\0" * 500_000
    deps.s3.put_object(Bucket=deps.resources.bucket, Key="x/big", Body=data)
    f = S3RangedFile(deps.s3, deps.resources.bucket, "x/big", len(data), block_bytes=10_000, max_bytes=50_000)
    f.seek(-100, 2)
    assert f.read() == b"\0" * 100
    f.seek(0)
    f.read(20_000)
    assert f.bytes_fetched == 30_000 and f.requests == 2
    with pytest.raises(ReadBudgetExceeded):
        f.read()
