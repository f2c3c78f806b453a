"""The cached test inputs (tests/cached_build.py): built once, never half-built, one build at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cached_build import BackgroundPrefetch, cached_build


def test_built_once_then_reused(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(partial: Path) -> None:
        builds.append(partial)
        partial.mkdir()
        (partial / "done").write_text("ok")

    target, _ = cached_build(tmp_path / "thing", build, done="done")
    again, _ = cached_build(tmp_path / "thing", build, done="done")
    assert target == again == tmp_path / "thing"
    assert builds == [tmp_path / "thing.partial"]  # built in a side directory, renamed when complete
    assert (target / "done").read_text() == "ok"
    assert not (tmp_path / "thing.partial").exists()


def test_a_failed_build_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    def broken(partial: Path) -> None:
        partial.mkdir()
        (partial / "half").write_text("")
        raise RuntimeError("install failed")

    with pytest.raises(RuntimeError, match="install failed"):
        cached_build(tmp_path / "thing", broken, done="done")
    assert not (tmp_path / "thing").exists()

    def good(partial: Path) -> None:
        partial.mkdir()
        (partial / "done").write_text("")

    target, _ = cached_build(tmp_path / "thing", good, done="done")
    assert sorted(p.name for p in target.iterdir()) == ["done"]  # the half-built leftover is gone


def test_a_second_caller_waits_for_the_first_build(tmp_path: Path) -> None:
    calls: list[str] = []

    def slow(partial: Path) -> None:
        calls.append("build")
        time.sleep(0.5)
        partial.mkdir()

    first = threading.Thread(target=cached_build, args=(tmp_path / "x", slow))
    first.start()
    time.sleep(0.1)
    _, waited = cached_build(tmp_path / "x", slow)
    first.join()
    assert calls == ["build"]
    assert waited > 0.2


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "prefetch.py"
    script.write_text(
        "import time\nprint('built rootfs', flush=True)\nprint('built venv', flush=True)\ntime.sleep(60)\n"
    )
    return script


def test_the_background_prefetch_runs_logs_and_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNAPSCRIBE_NO_PREFETCH", raising=False)
    prefetch = BackgroundPrefetch(_script(tmp_path), tmp_path / "logs" / "prefetch.log")
    assert prefetch.built() is None, "never started"
    prefetch.start()
    assert prefetch.process is not None
    deadline = time.monotonic() + 30
    while prefetch.built() != "built rootfs; built venv" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert prefetch.built() == "built rootfs; built venv"
    prefetch.stop()  # an interrupted session: the builders' process group is stopped
    assert prefetch.process.wait(timeout=10) != 0


def test_no_prefetch_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSCRIBE_NO_PREFETCH", "1")
    prefetch = BackgroundPrefetch(_script(tmp_path), tmp_path / "prefetch.log")
    prefetch.start()
    assert prefetch.process is None and prefetch.built() is None and not (tmp_path / "prefetch.log").exists()
