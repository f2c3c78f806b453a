"""The guide against the synthesized CDK app: every alarm is explained, every stack and output it
names exists. Synthesizes the app once (offline, fake account) in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.cdk, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operators-guide.md"

_SYNTH = """
import json, tempfile
from aws_cdk import App
from synapscribe_cdk.application import build, default_context
app = App(context=default_context(), outdir=tempfile.mkdtemp(prefix="docs-cdk-"))
platform = build(app)
assembly = app.synth()
out = {}
for stack in platform.stacks():
    t = assembly.get_stack_by_name(stack.stack_name).template
    out[stack.stack_name] = {
        "alarms": sorted(k for k, v in t["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"),
        "outputs": sorted(t.get("Outputs", {})),
    }
print("SYNTH-JSON " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def app() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="eu-west-1",
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DEFAULT_ACCOUNT="123456789012",
        CDK_DEFAULT_REGION="eu-west-1",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", _SYNTH],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SYNTH-JSON ")), None)
    assert proc.returncode == 0 and line, f"synth failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(line.removeprefix("SYNTH-JSON "))


def _alarm_section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    m = re.search(r"^## Alarms\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert m, "the guide has no Alarms section"
    return m.group(1)


def test_every_alarm_is_explained(app: dict[str, Any]):
    section = _alarm_section()
    explained = set(re.findall(r"`([A-Za-z0-9]+)`", section))
    for stack, info in app.items():
        for logical_id in info["alarms"]:
            name = re.sub(r"[0-9A-F]{8}$", "", logical_id)  # CDK's hash suffix
            assert name in explained, f"alarm {name} ({stack}) is not explained in the guide's Alarms table"


def test_alarms_the_guide_explains_exist(app: dict[str, Any]):
    rows = [ln for ln in _alarm_section().splitlines() if ln.startswith("| `")]
    assert rows, "no alarm rows"
    existing = {re.sub(r"[0-9A-F]{8}$", "", a) for info in app.values() for a in info["alarms"]}
    for row in rows:
        for name in re.findall(r"`([A-Za-z0-9]+)`", row.split("|")[1]):
            assert name in existing, f"the guide explains alarm {name}, which the CDK app does not create"


def test_stacks_and_outputs_the_guide_names_exist(app: dict[str, Any]):
    text = GUIDE.read_text(encoding="utf-8")
    stacks = set(app)
    for name in set(re.findall(r"SynapScribe-dev-[A-Za-z]+", text)):
        if name == "SynapScribe-dev":
            continue
        assert name in stacks, f"the guide names stack {name}; the app has {sorted(stacks)}"
    outputs = {o for info in app.values() for o in info["outputs"]}
    for output in ("AutoScalingGroupName", "AlarmTopicArn"):
        assert output in text, f"the guide should name the {output} output"
        assert output in outputs, f"the guide names output {output}, which no stack has"
    for stack_output in re.findall(r"(SynapScribe-dev-[A-Za-z]+)\.([A-Za-z]+)", text):
        stack, output = stack_output
        assert output in app[stack]["outputs"], f"{stack} has no output {output}"
