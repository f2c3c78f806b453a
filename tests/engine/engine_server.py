"""vLLM's OpenAI-compatible server on loopback, started with the production unit's own command line.

The vLLM role's unit template is rendered the way site.yml renders it (platform.yaml and the role's
defaults), with only these role variables set for the test:
  - vllm_model_path: the tiny model directory instead of the baked Qwen2.5-Omni-3B;
  - vllm_port: a free port instead of platform.yaml's ports.vllm (which a running stack may hold);
  - vllm_venv: the cached CPU engine environment instead of /opt/synapscribe/vllm.
The rendered ExecStart then runs with two swaps, both about the device:
  - its first word, the GPU check (require-gpu exits 78 without an NVIDIA GPU), is dropped;
  - the `vllm` console script runs through the environment's interpreter (its shebang names the
    directory the environment was built in, before the cache renamed it).
and the unit's Environment= settings with HOME moved into the test's directory and XDG_CACHE_HOME
into the test cache,
plus VLLM_CPU_KVCACHE_SPACE (the CPU engine's KV cache size in GiB: it takes the KV size from this
instead of --gpu-memory-utilization, which stays on the command line as rendered).

Every other flag is the unit's: a flag this vLLM rejects fails the engine tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cached_build import CACHE_DIR
from rendered_units import environment, exec_start, render_templates
from synapscribe.orphans import die_with_parent

# GiB of KV cache for the CPU engine: the tiny model's KV is 512 bytes a token, so this holds the
# unit's max_num_seqs sequences of max_model_len tokens many times over.
KV_CACHE_GIB = "1"
# How long the server may take to list the model. It usually starts in under two minutes; on a
# loaded two-core machine it has taken longer (production allows vllm.ready_timeout_seconds).
START_TIMEOUT_SECONDS = float(os.environ.get("SYNAPSCRIBE_ENGINE_START_TIMEOUT", "900"))
GPU_CHECK = "require-gpu"


class EngineStartError(RuntimeError):
    """The server exited or did not list the model in time; the message ends with its log."""


@dataclass(frozen=True)
class EngineCommand:
    argv: list[str]
    env: dict[str, str]
    unit_argv: list[str]  # the rendered ExecStart, unchanged
    unit_text: str


@dataclass
class Engine:
    """A running (or reused) vLLM server."""

    base_url: str  # http://127.0.0.1:PORT (the OpenAI client wants base_url + "/v1")
    model: str  # the served model name
    model_dir: Path | None  # None when reusing a server given by SYNAPSCRIBE_ENGINE_URL
    log_path: Path | None
    command: EngineCommand | None = None
    # Where the server may read file:// items (--allowed-local-media-path): None, as in the unit.
    media_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    start_seconds: float = 0.0

    def log_tail(self, chars: int = 6000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log: the server was not started here)"
        return self.log_path.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_command(venv: Path, model_dir: Path, port: int, workdir: Path) -> EngineCommand:
    """The rendered unit's command line and environment for this engine (swaps: module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = {"vllm_model_path": str(model_dir), "vllm_port": str(port), "vllm_venv": str(venv)}
    extra = [arg for name, value in overrides.items() for arg in ("-e", f"{name}={value}")]
    proc = render_templates(workdir, *extra)
    if proc.returncode != 0:
        raise EngineStartError(
            f"rendering the vLLM unit failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    unit = (workdir / "vllm.service").read_text()
    unit_argv = exec_start(unit)
    if not unit_argv[0].endswith(f"/{GPU_CHECK}") or unit_argv[1] != f"{venv}/bin/vllm":
        raise EngineStartError(
            f"the unit's ExecStart no longer starts with {GPU_CHECK} and vllm: {unit_argv}"
        )
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        **environment(unit),
        "HOME": str(workdir / "home"),
        # Like the unit's CacheDirectory (kept across restarts): vLLM's compiled graphs, which make
        # the next start faster.
        "XDG_CACHE_HOME": str(CACHE_DIR / "engine-runtime-cache"),
        "VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB,
    }
    return EngineCommand([str(venv / "bin" / "python"), *unit_argv[1:]], env, unit_argv, unit)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def served_models(base_url: str) -> list[str]:
    response = httpx.get(f"{base_url}/v1/models", timeout=5)
    response.raise_for_status()
    return [m["id"] for m in response.json()["data"]]


def _wait_listed(engine: Engine, timeout: float) -> None:
    assert engine.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = engine.process.poll()
        if code is not None:
            raise EngineStartError(f"vLLM exited {code} while starting:\n{engine.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if engine.model in served_models(engine.base_url):
                return
        time.sleep(1)
    raise EngineStartError(f"vLLM did not list {engine.model} within {timeout:.0f} s:\n{engine.log_tail()}")


def stop(process: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGTERM the server's process group (API server, engine core, worker), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):  # workers left in the group after the leader
        os.killpg(process.pid, signal.SIGKILL)


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # vLLM stops when the test process is gone, even SIGKILLed (its own group follows it).
            preexec_fn=die_with_parent(),
        )


@contextlib.contextmanager
def running_engine(
    venv: Path,
    model_dir: Path,
    workdir: Path,
    port: int | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[Engine]:
    """Start the server with the unit's command line; yield it once it lists its model; stop it."""
    port = port or free_port()
    command = engine_command(venv, model_dir, port, workdir)
    host = flag(command.argv, "--host")
    log_path = workdir / "vllm.log"
    engine = Engine(
        base_url=f"http://{host}:{port}",
        model=flag(command.argv, "--served-model-name"),
        model_dir=model_dir,
        log_path=log_path,
        command=command,
    )
    started = time.monotonic()
    engine.process = spawn(command.argv, command.env, log_path)
    try:
        _wait_listed(engine, timeout)
        engine.start_seconds = time.monotonic() - started
        yield engine
    finally:
        stop(engine.process)


def reuse_engine(base_url: str) -> Engine:
    """A server someone started (SYNAPSCRIBE_ENGINE_URL): its one served model."""
    base_url = base_url.rstrip("/").removesuffix("/v1")
    models = served_models(base_url)
    if len(models) != 1:
        raise EngineStartError(f"{base_url} serves {models}, expected one model")
    model_dir = os.environ.get("SYNAPSCRIBE_ENGINE_MODEL_DIR")
    return Engine(base_url, models[0], Path(model_dir) if model_dir else None, None)
