"""Fixtures shared by every test package: moto-backed AWS state and the platform config."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_test_env import TEST_RESOURCES
from moto import mock_aws
from required_tools import MARKER_HELP, require_tools, tools_needed
from synapscribe.platform import PlatformConfig, load_platform
from synapscribe.settings import AwsResources
from synapscribe.store import Store
from synapscribe_local.moto_atomic import atomic_dynamodb_writes
from synapscribe_local.provision import provision
from work_units import FolderOrFileScheduling, worker_rank
from worker_summary import from_workers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, which may already run the tools
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_tool(...)`: fail (or, for `make test-fast` outside CI, skip) naming each
    missing tool and the set-up step."""
    require_tools(*tools_needed(item))


@pytest.fixture
def platform() -> PlatformConfig:
    return load_platform()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region so nothing can ever reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for name, value in TEST_RESOURCES.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.fixture
def resources(aws_env: None) -> AwsResources:
    return AwsResources()


@pytest.fixture
def aws(resources: AwsResources) -> Iterator[AwsResources]:
    """moto's in-process AWS with the platform's bucket and tables created."""
    atomic_dynamodb_writes()  # DynamoDB's conditional writes are atomic; moto's are not under threads
    with mock_aws():
        provision(resources, boto3.client("s3"), boto3.client("dynamodb"))
        yield resources


@pytest.fixture
def store(aws: AwsResources, platform: PlatformConfig) -> Store:
    return Store(aws, platform)


@pytest.fixture
def start_standin() -> Iterator[Callable[..., str]]:
    """Start model stand-ins (subprocesses on free ports): `start_standin("--report-latencies")`.

    Returns the base URL `http://127.0.0.1:PORT` (the OpenAI client wants `+ "/v1"`); every
    stand-in started is stopped when the test ends.
    """
    from synapscribe_local.standin.process import spawn_standin

    with contextlib.ExitStack() as stack:

        def start(*args: str, env: dict[str, str] | None = None) -> str:
            return stack.enter_context(spawn_standin(args, env=env))

        yield start


@pytest.fixture
def standin_server(start_standin: Callable[..., str]) -> str:
    """A fresh model stand-in with the platform's defaults and no latency; its base URL."""
    return start_standin()


@pytest.fixture(scope="session")
def audio_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated test audio lives: $SYNAPSCRIBE_AUDIO_CACHE (kept across runs) or a session dir."""
    env = os.environ.get("SYNAPSCRIBE_AUDIO_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def lecture_audio(audio_cache_dir: Path) -> Callable[..., Path]:
    """`lecture_audio(minutes, fmt="mp3")`: a generated lecture (espeak-ng, text embedded; see
    synapscribe_local.audiogen), made once per session and cache directory."""
    from synapscribe_local.audiogen import cached_lecture

    def make(minutes: float, fmt: str = "mp3") -> Path:
        return cached_lecture(minutes, fmt, cache_dir=audio_cache_dir)

    return make


@pytest.fixture(scope="session")
def spoken_audio(audio_cache_dir: Path) -> Callable[..., Path]:
    """`spoken_audio(text, fmt="mp3")`: `text` spoken by espeak-ng (text embedded), made once."""
    from synapscribe_local.audiogen import cached_speech

    def make(text: str, fmt: str = "mp3") -> Path:
        return cached_speech(text, fmt, cache_dir=audio_cache_dir)

    return make


# In a run without workers, the slow phases run last, each with a background prefetch of its inputs
# started at collection, so the installs overlap the faster tests: the real engine (its environment
# and model), then the host verification (its root filesystem and vLLM environment). On xdist's
# workers (`make test`), the longest units of work come first instead (tests/work_units.py).
PHASES = ("engine", "host")


@pytest.hookimpl(trylast=True)  # after the packages' conftests have marked their items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def phase(item: pytest.Item) -> int:
        return next((i + 1 for i, name in enumerate(PHASES) if item.get_closest_marker(name)), 0)

    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike
        items.sort(key=worker_rank)
    else:
        items.sort(key=phase)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> FolderOrFileScheduling | None:
    """`--dist loadfile`: a unit per file, each session folder one unit, in the workers' order."""
    if config.getvalue("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False  # hand the units out in the order the workers sorted
    return FolderOrFileScheduling(config, log)  # type: ignore[arg-type]


#: What each worker handed over when it finished (worker_summary.py), printed by the controller.
WORKER_OUTPUTS: list[dict[str, Any]] = []


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, on the controller
def pytest_testnodedown(node: Any, error: object) -> None:
    WORKER_OUTPUTS.append(dict(getattr(node, "workeroutput", None) or {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in from_workers(WORKER_OUTPUTS):
        terminalreporter.write_line(line)


def pytest_report_header() -> list[str]:
    return [f"synapscribe: max_model_len={load_platform().vllm.max_model_len} ci={os.environ.get('CI', '')}"]
