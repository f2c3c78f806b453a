"""A local run of AgentCore (the stand-in, TTS, moto) shows its EMF metric lines and correlation ids."""

from __future__ import annotations

import json
import time

from synapscribe.agentcore.metrics import NAMESPACE
from synapscribe_local import audiogen
from synapscribe_local.harness import agentcore_rig

OWNER = "eu-west-1:metrics-owner"


def test_metric_lines_and_correlation_ids_in_a_local_run() -> None:
    with agentcore_rig(
        agentcore_env={"SYNAPSCRIBE_METRICS_INTERVAL_SECONDS": "1", "SYNAPSCRIBE_INSTANCE_ID": "i-local"}
    ) as st:
        lecture = st.put_lecture(OWNER, audiogen.cached_lecture(5))
        session_id = st.start_session(OWNER, lecture)
        answer = st.ask(OWNER, session_id, "conn-m", text="What does rubisco do in the Calvin cycle?")[-1]
        assert answer["type"] == "answer", answer
        request_id = answer["requestId"]
        deadline = time.monotonic() + 15
        docs: list[dict] = []
        while time.monotonic() < deadline:
            marker = "synapscribe.agentcore.emf: "
            docs = [
                json.loads(x.split(marker, 1)[1]) for x in st.agentcore.log_text().splitlines() if marker in x
            ]
            if any(d.get("Answered") for d in docs):
                break
            time.sleep(0.5)
        log_text = st.agentcore.log_text()
    answered = [d for d in docs if d.get("Answered")]
    assert answered, log_text[-3000:]
    doc = answered[0]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE and doc["InstanceId"] == "i-local"
    assert doc["TimeToAnswerComplete"] > 0 and "InFlightToModel" in doc
    # Every line AgentCore logged for the question carries its id (the requestId: no edge id given).
    tagged = [line for line in log_text.splitlines() if f"[{request_id}]" in line]
    assert any("synapscribe.agentcore.metrics: " in line for line in tagged), log_text[-3000:]
