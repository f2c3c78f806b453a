"""`make synth` with no network at all: the recipe the Makefile runs, inside a network namespace
that has only a loopback interface, with a resolver that records every name looked up.

The CDK CLI sends usage telemetry by default from version 2.1100.0 (a name lookup of
cdk-cli-telemetry.us-east-1.api.aws); cdk.json's context `"cli-telemetry": false` switches it off
for every CLI command run here (https://docs.aws.amazon.com/cdk/v2/guide/cli-telemetry.html; the
CLI's own check is `canCollectTelemetry` in aws-cdk's lib/cli/telemetry/collect-telemetry.js)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from required_tools import skip_unless_possible_or_fail_in_ci
from synth_support import REPO

DNS_LOGGER = """
import socket, sys
out = open(sys.argv[1], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[2], "w").close()
while True:
    data, _ = s.recvfrom(4096)
    labels, i = [], 12
    while i < len(data) and data[i]:
        labels.append(data[i + 1 : i + 1 + data[i]].decode(errors="replace"))
        i += data[i] + 1
    out.write(".".join(labels) + "\\n")
"""


def isolation_problem() -> str | None:
    if os.geteuid() != 0:
        return "running synth in a network namespace needs root (unshare -n, mount --bind)"
    missing = [t for t in ("unshare", "ip", "mount") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"unshare -n -m is not permitted here: {probe.stderr.strip()}"
    return None


def synth_recipe() -> str:
    """`make synth`'s own command line (`make -n`), without its set-up step (run beforehand)."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "synth", "CDK_ENV=dev"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in printed.replace("\\\n", " ").splitlines() if line.strip()]
    assert lines[0].strip() == "scripts/setup", printed
    assert len(lines) == 2 and "cdk synth" in lines[1], printed
    return lines[1].strip()


def test_make_synth_needs_no_network_and_sends_no_telemetry(tmp_path: Path) -> None:
    skip_unless_possible_or_fail_in_ci(isolation_problem())
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (tmp_path / "dns.py").write_text(DNS_LOGGER)
    queries, listening, out = tmp_path / "queries", tmp_path / "listening", tmp_path / "cdk.out"
    script = "\n".join(
        [
            "set -e",
            "ip link set lo up",
            f"mount --bind {tmp_path / 'resolv.conf'} /etc/resolv.conf",
            f"{shlex.quote(sys.executable)} {tmp_path / 'dns.py'} {queries} {listening} &",
            f"while [ ! -e {listening} ]; do sleep 0.1; done",
            f"{synth_recipe()} -vvv -o {shlex.quote(str(out))}",
            # The CLI hands telemetry to a detached process: give one a moment to look a name up.
            "sleep 2",
            "kill %1",
        ]
    )
    # A new user's environment: no AWS credentials or CDK settings, nothing disabling telemetry.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_", "TELEMETRY_"))}
    done = subprocess.run(
        ["unshare", "-n", "-m", "bash", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Telemetry disabled" in log, "the CLI did not report telemetry off"
    assert "Telemetry sink registered" not in log
    looked_up = queries.read_text().split() if queries.exists() else []
    assert looked_up == [], f"synth looked up {sorted(set(looked_up))}"
    manifest = json.loads((out / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    # The account's two (account, image pipeline), the environment's five and the page's two
    # (hosting, content).
    names = sorted(k for k, a in manifest["artifacts"].items() if a in stacks)
    assert len(stacks) == 9, names


def test_cdk_json_switches_cli_telemetry_off() -> None:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert context["cli-telemetry"] is False
