"""spawn_service: a service that exits or never gets ready fails with its name and log; a ready one is
stopped on the way out."""

from __future__ import annotations

import sys
import time

import pytest
from synapscribe_local.services import ServiceStartError, free_port, http_ok, spawn_service

pytestmark = pytest.mark.integration


def test_a_service_that_exits_is_named_with_its_log() -> None:
    cmd = [sys.executable, "-c", "import sys; print('missing SOME_VARIABLE'); sys.exit(3)"]
    with pytest.raises(ServiceStartError) as err, spawn_service(cmd, lambda: False, name="demo service"):
        pass
    assert str(err.value).startswith("demo service exited with 3 (")
    assert "missing SOME_VARIABLE" in str(err.value)


def test_a_service_that_is_not_ready_in_time_is_stopped() -> None:
    cmd = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match=r"slow service not ready \(.*\n.*starting"):  # noqa: SIM117
        with spawn_service(cmd, lambda: False, name="slow service", timeout=0.5):
            pass
    assert time.monotonic() - started < 15


def test_a_ready_service_is_yielded_and_stopped() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with spawn_service(cmd, lambda: http_ok(url + "/"), name="http.server", timeout=20) as proc:
        assert http_ok(url + "/")
        assert proc.poll() is None
    assert proc.poll() is not None
    assert not http_ok(url + "/")
