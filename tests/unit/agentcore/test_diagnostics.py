"""Operator diagnostics: nvidia-smi parsing (a fake nvidia-smi on PATH), the 503 without one, and
the rule that only callers on the instance itself get an answer."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from synapscribe.agentcore import diagnostics as diag
from synapscribe.agentcore.app import create_app

from .agentcore_offline import offline_deps

A10G = "0, NVIDIA A10G, 23028, 17893, 41\n"


def fake_nvidia_smi(directory: Path, stdout: str, exit_code: int = 0, stderr: str = "") -> Path:
    """An executable `nvidia-smi` that checks it was asked the diagnostics' query."""
    script = directory / "nvidia-smi"
    expected = " ".join(diag.GPU_QUERY)
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" != "{expected}" ]; then echo "unexpected arguments: $*" >&2; exit 64; fi\n'
        f"printf '%s' '{stdout}'\n"
        f"printf '%s' '{stderr}' >&2\n"
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def client_from() -> Iterator[Any]:
    """TestClient factories for an AgentCore whose model server and TTS are closed ports."""
    opened: list[TestClient] = []

    def make(host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> TestClient:
        deps = offline_deps()
        client = TestClient(create_app(None, None, deps), client=(host, 40000), headers=headers)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def test_parse_gpus_reads_each_line_and_na_values() -> None:
    text = A10G + "1, NVIDIA L4, 23034, [N/A], [Not Supported]\n\n"
    gpus = diag.parse_gpus(text)
    assert [g.wire() for g in gpus] == [
        {
            "index": 0,
            "name": "NVIDIA A10G",
            "memoryTotalMiB": 23028,
            "memoryUsedMiB": 17893,
            "utilizationPercent": 41,
        },
        {
            "index": 1,
            "name": "NVIDIA L4",
            "memoryTotalMiB": 23034,
            "memoryUsedMiB": None,
            "utilizationPercent": None,
        },
    ]


def test_parse_gpus_keeps_commas_in_names_and_refuses_garbage() -> None:
    (gpu,) = diag.parse_gpus("3, Tesla T4, rev A, 15360, 0, 0\n")
    assert (gpu.index, gpu.name, gpu.memoryTotalMiB) == (3, "Tesla T4, rev A", 15360)
    with pytest.raises(diag.GpuUnavailableError, match="unexpected line"):
        diag.parse_gpus("No devices were found\n")
    with pytest.raises(diag.GpuUnavailableError, match=r"memory\.used"):
        diag.parse_gpus("0, A10G, 23028, lots, 3\n")
    with pytest.raises(diag.GpuUnavailableError, match="GPU index"):
        diag.parse_gpus("zero, A10G, 23028, 1, 3\n")


def test_local_caller_rule() -> None:
    assert diag.is_local_caller(("127.0.0.1", 5), ("127.0.0.1", 5000), {})
    assert diag.is_local_caller(("::1", 5), ("::1", 5000), {})
    assert diag.is_local_caller(("::ffff:127.0.0.1", 5), ("10.0.1.5", 5000), {})
    # An SSM forward to the instance's own address: the caller is the instance itself.
    assert diag.is_local_caller(("10.0.1.5", 5), ("10.0.1.5", 5000), {})
    # The load balancer: another address, and it adds X-Forwarded-For.
    assert not diag.is_local_caller(("10.0.0.7", 5), ("10.0.1.5", 5000), {})
    assert not diag.is_local_caller(("127.0.0.1", 5), ("127.0.0.1", 5000), {"x-forwarded-for": "10.0.0.7"})
    assert not diag.is_local_caller(None, ("127.0.0.1", 5000), {})
    assert not diag.is_local_caller(("testclient", 5), ("testserver", 80), {})


def test_gpu_without_nvidia_smi_is_503_with_a_reason(
    client_from: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no nvidia-smi
    resp = client_from().get("/v1/diagnostics/gpu")
    assert resp.status_code == 503
    assert "nvidia-smi is not installed" in resp.json()["detail"]


def test_gpu_through_a_fake_nvidia_smi(
    client_from: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, A10G)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    resp = client_from().get("/v1/diagnostics/gpu")
    assert resp.status_code == 200, resp.text
    assert resp.json() == [
        {
            "index": 0,
            "name": "NVIDIA A10G",
            "memoryTotalMiB": 23028,
            "memoryUsedMiB": 17893,
            "utilizationPercent": 41,
        }
    ]


def test_gpu_when_nvidia_smi_fails_is_503_with_its_message(
    client_from: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver."
    fake_nvidia_smi(tmp_path, "", exit_code=9, stderr=message)
    monkeypatch.setenv("PATH", str(tmp_path))
    resp = client_from().get("/v1/diagnostics/gpu")
    assert resp.status_code == 503
    assert resp.json()["detail"] == f"nvidia-smi failed (exit 9): {message}"


def test_nvidia_smi_that_hangs_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    with pytest.raises(diag.GpuUnavailableError, match=r"did not answer within 0\.2 s"):
        asyncio.run(diag.query_gpus(timeout=0.2))


def test_callers_off_the_instance_are_refused(
    client_from: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, A10G)
    monkeypatch.setenv("PATH", str(tmp_path))
    for client in (client_from("10.0.0.7"), client_from("127.0.0.1", {"X-Forwarded-For": "10.0.0.7"})):
        for path in ("/v1/diagnostics/gpu", "/v1/diagnostics/metrics"):
            resp = client.get(path)
            assert resp.status_code == 403, (path, resp.text)
            assert "only callers on the instance itself" in resp.json()["detail"]
    # The rest of the API is unaffected.
    assert client_from("10.0.0.7").get("/health").status_code == 200


def test_metrics_when_vllm_is_down_is_503_naming_it(client_from: Any) -> None:
    resp = client_from().get("/v1/diagnostics/metrics")
    assert resp.status_code == 503
    assert (
        "vLLM's metrics at http://127.0.0.1:" in resp.json()["detail"] and "/metrics" in resp.json()["detail"]
    )


def test_metrics_url_is_beside_the_openai_base() -> None:
    assert diag.metrics_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/metrics"
    assert diag.metrics_url("https://vllm.internal:8443/v1/") == "https://vllm.internal:8443/metrics"
