"""bake: Packer as before (scripts/bake-ami), then the image is tagged as baked.

The image goes to no environment: `verify` and `promote` take it from here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synapscribe import image_names as tags

from synapscribe_ops.ami.errors import Exit, PipelineError

Run = Callable[..., subprocess.CompletedProcess[str]]
BAKE_SCRIPT = Path("scripts") / "bake-ami"
MANIFEST = Path("ami") / "manifest.json"


def model_commit(repo: Path) -> str:
    """The model commit scripts/bake-ami recorded for the last build in ami/manifest.json."""
    manifest = json.loads((repo / MANIFEST).read_text(encoding="utf-8"))
    last = next(b for b in manifest["builds"] if b["packer_run_uuid"] == manifest["last_run_uuid"])
    return str(last.get("custom_data", {}).get("model_commit", ""))


def bake(
    ec2: Any, *, repo: Path, region: str, packer_vars: Sequence[str] = (), run: Run = subprocess.run
) -> str:
    """Build the image and tag it baked (with its model commit); its id."""
    argv = [str(repo / BAKE_SCRIPT), "--region", region]
    for var in packer_vars:
        argv += ["--var", var]
    # Packer's log goes to our stderr as it comes; only the id comes back on stdout.
    proc = run(argv, cwd=repo, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("ami-"):
        raise PipelineError(
            Exit.BAKE_FAILED, f"{BAKE_SCRIPT} exited {proc.returncode} (its log is above): no image"
        )
    image_id = lines[-1]
    commit = model_commit(repo)
    tags.put(ec2, image_id, {tags.BAKED: tags.now(), tags.MODEL_COMMIT: commit})
    return image_id
