"""The wheel the Ansible runtime role builds for the GPU hosts (`pip wheel --no-deps` of the
repository root) holds the product alone: no operator tools, no test doubles, no CDK app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_hosts_wheel_is_the_product_alone(tmp_path: Path) -> None:
    source = tmp_path / "src"
    # A copy, so the build's scratch files (build/lib, egg-info) stay out of the checkout.
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "build", "cdk.out", "__pycache__", "*.egg-info"
        ),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("synapscribe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"synapscribe"}, tops
    assert "synapscribe/agentcore/app.py" in names and "synapscribe/platform.yaml" in names
    assert "synapscribe/web/static/app.js" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "synapscribe.commands" not in zipfile.ZipFile(wheel).read(entry_points).decode()
