"""`synapscribe smoke` against a URL where nothing listens fails, and says nothing passed on nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_smoke_against_a_dead_url_fails_every_check(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(BIN / "synapscribe"), "smoke", "--url", f"ws://127.0.0.1:{free_port()}", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "0 messages checked" not in out
    assert "nothing could be checked against the contract" in out, out
    assert not [line for line in out.splitlines() if line.strip().startswith("ok ")], out
