"""Fixtures of the stand-in tests (helpers in standin_support.py; audio parts in tests/chat_parts.py)."""

from __future__ import annotations

import pytest
from synapscribe_local.standin.config import StandinConfig


@pytest.fixture
def config() -> StandinConfig:
    """The stand-in's configuration from the platform's values."""
    return StandinConfig.from_platform()
