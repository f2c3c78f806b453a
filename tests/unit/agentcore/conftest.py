"""Fixtures of the AgentCore tests: a generated lecture and question, and `make_rig`, the query
pipeline in-process (pipeline_rig.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import pytest
from required_tools import require_tools
from synapscribe.platform import PlatformConfig
from synapscribe.settings import AwsResources
from synapscribe_local import audiogen

from .pipeline_rig import Rig, build_rig


@pytest.fixture(scope="session")
def lecture_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A generated 1.5-minute lecture (MP3, its text embedded)."""
    require_tools("espeak-ng")
    return audiogen.make_lecture(tmp_path_factory.mktemp("lec") / "lecture.mp3", 1.5).path.read_bytes()


@pytest.fixture(scope="session")
def question_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """ "What does rubisco fix?" spoken (MP3, its text embedded)."""
    require_tools("espeak-ng")
    return audiogen.speak("What does rubisco fix?", tmp_path_factory.mktemp("q") / "q.mp3").path.read_bytes()


@pytest.fixture
def make_rig(
    aws: AwsResources, platform: PlatformConfig, lecture_file: bytes
) -> Callable[..., AbstractAsyncContextManager[Rig]]:
    """`async with make_rig(tts=…, vllm_up=…, limit=…, …) as rig:` (see pipeline_rig.build_rig)."""
    build: Callable[..., Any] = partial(build_rig, aws, platform, lecture_file)
    return build
