"""A virtual environment with the pinned vLLM, cached outside the checkout (about 9 GB, a few
minutes to create), used only for its command-line parser: `VLLM_TARGET_DEVICE=cpu` lets it load
without a GPU once torchvision, torchaudio and torchcodec (CUDA builds) are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cached_build import CACHE_DIR, cached_build

# Runs inside the vLLM environment. Prints the parsed values as JSON, or exits 2 (argparse) on a
# flag the pinned vLLM does not know.
PARSE_SCRIPT = r"""
import json, sys
try:
    from vllm.entrypoints.common.cli_args import make_arg_parser
except ImportError:  # the module moves between vLLM versions
    from vllm.entrypoints.openai.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser

argv = json.loads(sys.stdin.read())
args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
keys = ("model_tag", "host", "port", "served_model_name", "max_model_len", "gpu_memory_utilization",
        "max_num_seqs", "max_num_batched_tokens", "dtype", "enable_prefix_caching", "limit_mm_per_prompt",
        "mm_processor_cache_gb")
print("PARSED " + json.dumps({k: getattr(args, k, None) for k in keys}, default=str))
"""

DROP = ("torchvision", "torchaudio", "torchcodec")


def vllm_venv(version: str) -> tuple[Path, float]:
    """The cached environment for `version` and the seconds spent creating it or waiting for it."""
    root = Path(os.environ.get("SYNAPSCRIBE_VLLM_VENV", CACHE_DIR / f"vllm-venv-{version}"))
    return cached_build(root, lambda partial: _create(partial, version), done="bin/python")


def _create(partial: Path, version: str) -> None:
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(partial)], check=True, timeout=300)
    pip = [str(partial / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", f"vllm=={version}"], check=True, timeout=1800, capture_output=True)
    subprocess.run([*pip, "uninstall", "--yes", *DROP], check=True, timeout=300, capture_output=True)


def parse(venv: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", PARSE_SCRIPT],
        input=json.dumps(argv), capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def parsed_values(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    for line in proc.stdout.splitlines():
        if line.startswith("PARSED "):
            return dict(json.loads(line[len("PARSED ") :]))
    raise AssertionError(f"vLLM's parser printed no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
