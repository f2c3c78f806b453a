"""`synapscribe bench full --gpu-url --metrics-url` through AgentCore's operator diagnostics, on the
real local stack (a fake nvidia-smi on AgentCore's PATH: this host has no GPU)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe_local.process import LocalStackProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COLUMNS = ["GPU memory used (MiB)", "GPU memory total (MiB)", "GPU utilization (%)"]


def test_gpu_table_is_filled_from_the_diagnostics(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0, NVIDIA A10G, 23028, 17893, 41\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "report"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        # The benchmark's concurrent sessions ask as one identity (see test_bench_full.py).
        "SYNAPSCRIBE_QUOTA_JOBS_IN_FLIGHT": "64",
        "SYNAPSCRIBE_QUOTA_QUESTIONS_PER_MINUTE": "10000",
    }
    with LocalStackProcess(env=env) as stack:
        agentcore = json.loads(stack.info_path.read_text())["services"]["agentcore"]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapscribe.cli",
                "bench",
                "full",
                "--url",
                stack.url,
                "--gpu-url",
                f"{agentcore}/v1/diagnostics/gpu",
                "--metrics-url",
                f"{agentcore}/v1/diagnostics/metrics",
                "--repeats",
                "1",
                "--transcription-seconds",
                "8",
                "--tts-words",
                "5",
                "--concurrency",
                "2",
                "--lecture-seconds",
                "20",
                "--no-progress",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert proc.returncode == 0, f"bench full failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    md = (out / "report.md").read_text()
    m = re.search(r"^## GPU memory[^\n]*\n(.*?)(?=^## |\Z)", md, flags=re.M | re.S)
    assert m, md
    lines = [ln for ln in m.group(1).splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert all(c in header for c in COLUMNS), header
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    used = header.index(COLUMNS[0])
    assert rows and all(r[used] == "17,893" for r in rows), rows
    assert all(r[header.index(COLUMNS[1])] == "23,028" for r in rows)
    # vLLM's KV-cache figure came through the diagnostics' metrics proxy too.
    assert any(r[1] != "0" for r in rows), rows
    assert "GPU memory not read" not in md and "vLLM metrics not read" not in md
