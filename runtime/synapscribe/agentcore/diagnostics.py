"""Operator diagnostics: the GPUs (nvidia-smi) and vLLM's /metrics, for callers on the instance only.

The load balancer reaches AgentCore from its own address and always adds `X-Forwarded-For`; an
operator reaches it over an SSM port-forward, whose agent connects from the instance itself (to
127.0.0.1, or to the instance's own address, which is then also the caller's address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NVIDIA_SMI = "nvidia-smi"
GPU_QUERY = [
    "--query-gpu=index,name,memory.total,memory.used,utilization.gpu",
    "--format=csv,noheader,nounits",
]
NVIDIA_SMI_TIMEOUT_SECONDS = 10.0
#: Headers a proxy adds; a request that carries one did not come straight from the instance.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

ONLY_LOCAL = (
    "diagnostics answer only callers on the instance itself (loopback); "
    "reach them over an SSM port-forward (see the operator's guide)"
)


class GpuUnavailableError(Exception):
    """No nvidia-smi, no GPU, or nvidia-smi failed; the message says which."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memoryTotalMiB: int | None
    memoryUsedMiB: int | None
    utilizationPercent: int | None

    def wire(self) -> dict[str, Any]:
        return asdict(self)


def _number(field: str, value: str, line: str) -> int | None:
    if value.startswith("[") or value in ("N/A", ""):  # "[N/A]", "[Not Supported]"
        return None
    try:
        return round(float(value))
    except ValueError:
        raise GpuUnavailableError(f"nvidia-smi printed {value!r} for {field} in {line!r}") from None


def parse_gpus(text: str) -> list[Gpu]:
    """nvidia-smi's `index, name, memory.total, memory.used, utilization.gpu` CSV (no header, no units)."""
    gpus: list[Gpu] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        # The name may contain commas; the other four fields never do.
        head, _, rest = line.partition(",")
        parts = rest.rsplit(",", 3)
        if len(parts) != 4:
            raise GpuUnavailableError(f"nvidia-smi printed an unexpected line: {line!r}")
        name, total, used, util = (p.strip() for p in parts)
        try:
            index = int(head.strip())
        except ValueError:
            raise GpuUnavailableError(
                f"nvidia-smi printed a GPU index {head.strip()!r} in {line!r}"
            ) from None
        gpus.append(
            Gpu(
                index=index,
                name=name,
                memoryTotalMiB=_number("memory.total", total, line),
                memoryUsedMiB=_number("memory.used", used, line),
                utilizationPercent=_number("utilization.gpu", util, line),
            )
        )
    return gpus


async def query_gpus(timeout: float = NVIDIA_SMI_TIMEOUT_SECONDS) -> list[Gpu]:  # noqa: ASYNC109
    exe = shutil.which(NVIDIA_SMI)
    if exe is None:
        raise GpuUnavailableError(
            "nvidia-smi is not installed on this host (no NVIDIA driver): no GPU to report"
        )
    proc = await asyncio.create_subprocess_exec(
        exe, *GPU_QUERY, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GpuUnavailableError(f"nvidia-smi did not answer within {timeout:g} s") from None
    if proc.returncode != 0:
        said = (err or out).decode("utf-8", "replace").strip()[:500]
        raise GpuUnavailableError(f"nvidia-smi failed (exit {proc.returncode}): {said or 'no output'}")
    gpus = parse_gpus(out.decode("utf-8", "replace"))
    if not gpus:
        raise GpuUnavailableError("nvidia-smi lists no GPU")
    return gpus


def is_local_caller(
    client: tuple[str, int] | None, server: tuple[str, int] | None, headers: Mapping[str, str]
) -> bool:
    """The caller is on this instance: loopback, or its address is the one it connected to."""
    if client is None or any(h in headers for h in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return True
    return server is not None and client[0] == server[0]


def metrics_url(vllm_base_url: str) -> str:
    """vLLM serves /metrics at its root, beside the OpenAI API under /v1."""
    parts = urlsplit(vllm_base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))
