"""Stopping an answer on a local AgentCore (the stand-in writing slowly, espeak-ng speaking):
the cancel frees the answer's model slot and the model's request within a second, the stopped
query ends with one `answer` marked `stopped` and nothing after it, and a question asked right
after it (barge-in) gets its speech without waiting for the stopped answer's.
The figures are printed (pytest -s): `stop: ...`."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from synapscribe_local import audiogen
from synapscribe_local.harness import AgentCoreRig, agentcore_rig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.needs_tool("espeak-ng", "ffmpeg"),
]

OWNER = "eu-west-1:interrupt-owner"
#: About 20 s of answer unless stopped.
SLOW_ANSWER = ("--tokens-per-second", "20", "--answer-tokens", "400")


def running_in_model(st: AgentCoreRig) -> int:
    text = httpx.get(f"{st.standin_url}/metrics", timeout=5).text
    match = re.search(r"^vllm:num_requests_running\{[^}]*\} ([\d.]+)$", text, re.M)
    assert match, text
    return int(float(match.group(1)))


def first_audio_at(st: AgentCoreRig, connection: str, request_id: str) -> float:
    got = st.receiver.wait_for(
        connection,
        lambda ms: any(r.message.get("requestId") == request_id and r.message["type"] == "audio" for r in ms),
        60,
    )
    return next(
        r.at for r in got if r.message.get("requestId") == request_id and r.message["type"] == "audio"
    )


def test_a_stopped_answer_frees_its_slot_and_a_barge_in_is_not_kept_waiting() -> None:
    with agentcore_rig(standin_args=SLOW_ANSWER) as st:
        lecture = st.put_lecture(OWNER, audiogen.cached_lecture(0.5))
        session_id = st.start_session(OWNER, lecture)
        question = "What does the lecture say about photosynthesis?"

        # A question answered in full alone: how soon its first sentence is spoken.
        alone_at = time.time()
        alone = st.submit(OWNER, session_id, "c0", text=question)
        alone_first = first_audio_at(st, "c0", alone) - alone_at
        st.http.post("/v1/queries/cancel", json={"owner": OWNER, "requestId": alone})
        st.receiver.wait_final("c0", alone)

        stopped = st.submit(OWNER, session_id, "c1", text=question)
        first_audio_at(st, "c1", stopped)
        assert running_in_model(st) == 1
        asked = time.monotonic()
        reply = st.http.post("/v1/queries/cancel", json={"owner": OWNER, "requestId": stopped}).json()
        replied_s = time.monotonic() - asked
        model_running = running_in_model(st)
        assert reply["stopped"] and reply["ended"], reply
        assert reply["modelSlotsInFlight"] == 0 and model_running == 0, (reply, model_running)
        assert replied_s < 1.0, replied_s

        # Barge-in: the next question right away; its speech does not wait for the stopped one's.
        sent_at = time.time()
        barge_in = st.submit(OWNER, session_id, "c1", text="And how does it end?")
        answer = [r.message for r in st.receiver.wait_final("c1", barge_in, 60)][-1]
        assert answer["type"] == "answer" and "stopped" not in answer, answer
        first = first_audio_at(st, "c1", barge_in) - sent_at

        messages = st.receiver.of("c1")
        of_stopped = [i for i, r in enumerate(messages) if r.message.get("requestId") == stopped]
        finals = [
            messages[i].message for i in of_stopped if messages[i].message["type"] in ("answer", "error")
        ]
        assert len(finals) == 1 and finals[0]["stopped"] is True, finals
        # Nothing of the stopped query after its final (no late sentences among the new answer's).
        assert messages[of_stopped[-1]].message is finals[0]
        first_new = next(i for i, r in enumerate(messages) if r.message.get("requestId") == barge_in)
        assert of_stopped[-1] < first_new
        print(
            f"stop: model slot and model request freed, cancel answered in {replied_s * 1000:.0f} ms "
            f"(AgentCore: answer ended {reply['endedInMs']} ms after the stop); barge-in first audio "
            f"{first * 1000:.0f} ms after it was asked (a question alone: {alone_first * 1000:.0f} ms)"
        )
