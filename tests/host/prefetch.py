"""Build the host verification's slow, cached inputs (the debootstrap root filesystem and the pinned
vLLM environment) ahead of time. The host conftest starts this in the background when the session
collects host tests, so the downloads overlap the rest of the suite; the fixtures then find the
caches ready, or wait on the same file locks the builders take.
"""

from __future__ import annotations

import sys
import time

from nspawn import rootfs_tarball
from synapscribe.platform import load_platform
from vllm_venv import vllm_venv


def main() -> int:
    started = time.monotonic()
    print(f"rootfs: {rootfs_tarball()} ({time.monotonic() - started:.1f} s)", flush=True)
    venv, seconds = vllm_venv(load_platform().vllm.version)
    print(f"vllm venv: {venv} ({seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
