"""The smoke test's checks on hand-made streams: each rule of the contract's order can fail."""

from __future__ import annotations

import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from synapscribe_ops.smoke.aws_auth import (
    GuestAccess,
    deployed_target,
    read_stack_outputs,
    signed_connect_headers,
)
from synapscribe_ops.smoke.checks import (
    Budget,
    budget_problems,
    contract_problems,
    refers_back,
    stream_problems,
)
from synapscribe_ops.smoke.client import QueryResult, check_frame, local_url

RID = "r1"


def stream(*messages: dict[str, object], start: float = 100.0, step: float = 0.1) -> QueryResult:
    result = QueryResult(request_id=RID, sent_at=start)
    for i, m in enumerate(messages):
        result.messages.append(check_frame(json.dumps(m), start + step * (i + 1)))
    return result


def delta(text: str) -> dict[str, object]:
    return {"type": "answerDelta", "requestId": RID, "text": text}


def audio(seq: int) -> dict[str, object]:
    return {"type": "audio", "requestId": RID, "seq": seq, "url": f"http://x/{seq}.mp3", "text": "t"}


def answer(text: str, urls: list[str]) -> dict[str, object]:
    return {"type": "answer", "requestId": RID, "text": text, "audio": urls, "timings": {"totalMs": 5}}


GOOD = (
    delta("Hello "),
    audio(0),
    delta("world."),
    audio(1),
    answer("Hello world.", ["http://x/0.mp3", "http://x/1.mp3"]),
)


TRANSCRIPT = {"type": "transcript", "requestId": RID, "text": "hi"}


@pytest.mark.parametrize("at", range(len(GOOD)))
def test_a_voice_question_s_transcript_may_come_anywhere_before_the_answer(at: int) -> None:
    assert stream_problems(stream(*GOOD), voice_input=False, voice_output=True) == []
    voice = stream(*GOOD[:at], TRANSCRIPT, *GOOD[at:])
    assert stream_problems(voice, voice_input=True, voice_output=True) == []


@pytest.mark.parametrize(
    ("messages", "voice_input", "voice_output", "needle"),
    [
        (GOOD, True, True, "no transcript"),
        ((delta("a"), TRANSCRIPT, TRANSCRIPT, answer("a", [])), True, False, "once"),
        ((TRANSCRIPT, delta("a"), answer("a", [])), False, False, "typed question"),
        ((delta("Hello "), audio(1), answer("Hello", ["http://x/1.mp3"])), False, True, "seq"),
        ((delta("Hello"), answer("Goodbye", [])), False, False, "add up"),
        ((delta("Hi"), audio(0), answer("Hi", [])), False, True, "differ"),
        ((delta("Hi"), answer("Hi", [])), False, True, "no audio"),
        ((delta("Hi"), audio(0), answer("Hi", ["http://x/0.mp3"])), False, False, "voice was false"),
        ((answer("Hi", []),), False, False, "no answerDelta"),
        ((delta("Hi"), answer("Hi", []), answer("Hi", [])), False, False, "more than one"),
        (({"type": "error", "requestId": RID, "code": "busy", "message": "later"},), False, False, "busy"),
    ],
)
def test_each_rule_can_fail(
    messages: tuple[dict[str, object], ...], voice_input: bool, voice_output: bool, needle: str
) -> None:
    problems = stream_problems(stream(*messages), voice_input=voice_input, voice_output=voice_output)
    assert any(needle in p for p in problems), problems


WARMING = {
    "type": "warming", "requestId": RID, "estimatedSeconds": 480, "waitSeconds": 960,
    "message": "starting a server, about 480 s",
}  # fmt: skip


def test_warming_once_first_is_accepted_and_anywhere_else_is_not() -> None:
    """A question that found no server running gets `warming`, then its usual stream."""
    assert check_frame(json.dumps(WARMING), 0.0).problem is None
    assert stream_problems(stream(WARMING, *GOOD), voice_input=False, voice_output=True) == []
    voice = stream(WARMING, {"type": "transcript", "requestId": RID, "text": "hi"}, *GOOD)
    assert stream_problems(voice, voice_input=True, voice_output=True) == []
    late = stream_problems(stream(delta("Hello "), WARMING, *GOOD[1:]), voice_input=False, voice_output=True)
    assert any("warming must come at most once, first" in p for p in late), late
    twice = stream_problems(stream(WARMING, WARMING, *GOOD), voice_input=False, voice_output=True)
    assert any("warming must come" in p for p in twice), twice


def test_timed_out_stream() -> None:
    result = stream(delta("a"))
    result.timed_out = True
    assert any("did not finish" in p for p in stream_problems(result, voice_input=False, voice_output=False))


def test_budget() -> None:
    result = stream(*GOOD, step=1.0)  # first delta after 1 s, answer after 5 s
    assert budget_problems(result, Budget(), voice_output=True) == []
    tight = Budget(first_delta_ms=500, answer_ms=4000)
    problems = budget_problems(result, tight, voice_output=True)
    assert any("firstDeltaMs" in p for p in problems) and any("totalMs" in p for p in problems)


def test_contract_problems() -> None:
    frames = [
        check_frame('{"type":"session","sessionId":"s"}', 0),  # missing fields
        check_frame("[1]", 0),
        check_frame(b"\x00", 0),
        check_frame('{"type":"sessionEnded","sessionId":"s"}', 0),
    ]
    problems = contract_problems(frames)
    assert len(problems) == 3


def test_refers_back() -> None:
    assert refers_back(
        "Earlier you asked: where does photosynthesis take place?", "Where does photosynthesis take place?"
    )
    assert not refers_back("Rubisco fixes carbon.", "Where does photosynthesis take place in the plant?")


def test_local_url() -> None:
    assert local_url("ws://127.0.0.1:9", "a:b") == "ws://127.0.0.1:9/?identity=a%3Ab"
    assert local_url("ws://127.0.0.1:9/?x=1", "z") == "ws://127.0.0.1:9/?x=1&identity=z"
    assert local_url("ws://h", None) == "ws://h"


def verify_signature(url: str, headers: dict[str, str], creds: Credentials, region: str) -> bool:
    """Recompute the SigV4 signature as API Gateway does, from the headers that were sent."""
    host = url.split("/")[2]
    request = AWSRequest(
        method="GET",
        url="https://" + url.split("://", 1)[1],
        headers={
            "Host": host,
            "X-Amz-Date": headers["X-Amz-Date"],
            "X-Amz-Security-Token": headers["X-Amz-Security-Token"],
        },
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(creds, "execute-api", region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    return headers["Authorization"].endswith("Signature=" + signer.signature(string_to_sign, request))


def test_signed_headers_verify() -> None:
    url = "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"
    creds = Credentials("AKIDEXAMPLE", "secret", "token")
    headers = signed_connect_headers(url, creds, "eu-west-1")
    assert "Credential=AKIDEXAMPLE/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "token"
    assert verify_signature(url, headers, creds, "eu-west-1")
    assert not verify_signature(url, headers, Credentials("AKIDEXAMPLE", "other", "token"), "eu-west-1")
    assert not verify_signature(url.replace("prod", "dev"), headers, creds, "eu-west-1")
    with pytest.raises(ValueError):
        signed_connect_headers("https://x", creds, "eu-west-1")


def test_read_stack_outputs() -> None:
    doc = {
        "SynapScribeStack": {
            "WebSocketUrl": "wss://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "IdentityPoolId": "eu-west-1:1234",
            "GuestRoleArn": GUEST_ROLE,
            "BucketName": "b",
        }
    }
    assert read_stack_outputs(doc) == {
        "url": "wss://abc.execute-api.eu-west-1.amazonaws.com/prod",
        "identityPoolId": "eu-west-1:1234",
        "guestRoleArn": GUEST_ROLE,
        "region": "eu-west-1",
    }


GUEST_ROLE = "arn:aws:iam::123456789012:role/SynapScribe-dev-Identity-GuestsUnauthenticatedRole-X"
OUTPUTS = {
    "SynapScribe-dev-Api": {"WebSocketUrl": "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"},
    "SynapScribe-dev-Identity": {
        "IdentityPoolId": "eu-west-1:1234",
        "GuestRoleArn": GUEST_ROLE,
        "Region": "eu-west-1",
    },
}


def test_deployed_target_from_the_outputs_file(tmp_path) -> None:
    path = tmp_path / "cdk-outputs-dev.json"
    path.write_text(json.dumps(OUTPUTS))
    url, access = deployed_target(None, None, None, None, path)
    assert url == "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"
    assert access == GuestAccess("eu-west-1:1234", GUEST_ROLE, "eu-west-1")
    # Flags win over the file.
    _, access = deployed_target(None, None, None, "arn:aws:iam::1:role/other", path)
    assert access is not None and access.guest_role_arn == "arn:aws:iam::1:role/other"
    assert deployed_target("ws://127.0.0.1:1", None, None, None, None) == ("ws://127.0.0.1:1", None)


@pytest.mark.parametrize(
    ("flags", "outputs", "needle"),
    [
        # An outputs file from before the basic flow has no guest role: say so, do not guess.
        (
            (None, None, None, None),
            {"S": {k: v for k, v in OUTPUTS["SynapScribe-dev-Identity"].items() if k != "GuestRoleArn"}},
            "GuestRoleArn",
        ),
        (("wss://x/prod", "eu-west-1", "eu-west-1:1", None), None, "--guest-role-arn"),
        (("wss://x/prod", "eu-west-1", None, GUEST_ROLE), None, "--identity-pool-id"),
        (("wss://x/prod", None, "eu-west-1:1", GUEST_ROLE), None, "--region"),
    ],
)
def test_deployed_target_refuses_half_a_target(tmp_path, flags, outputs, needle) -> None:
    path = None
    if outputs is not None:
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
    with pytest.raises(ValueError, match=needle):
        deployed_target(*flags, path)
    if outputs is None:
        return
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        deployed_target(None, None, None, None, path)


def test_a_check_over_no_messages_fails() -> None:
    """A dead URL yields no frames: the contract check must not report them as matching."""
    assert contract_problems([]) == [
        "no message was received, so nothing could be checked against the contract"
    ]
    assert contract_problems(iter([check_frame('{"type":"sessionEnded","sessionId":"s"}', 0)])) == []


def test_an_empty_stream_is_not_a_good_stream() -> None:
    problems = stream_problems(stream(), voice_input=False, voice_output=False)
    assert any("did not finish" in p for p in problems)
