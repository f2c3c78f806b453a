"""Fixtures shared by every test package: moto-backed AWS state and the platform config."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from synapscribe.platform import PlatformConfig, load_platform
from synapscribe.provision import provision
from synapscribe.settings import AwsResources
from synapscribe.store import Store

TEST_RESOURCES = {
    "SYNAPSCRIBE_BUCKET": "synapscribe-test",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-test-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-test-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-test-sessions",
}


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
    with mock_aws():
        provision(resources, boto3.client("s3"), boto3.client("dynamodb"))
        yield resources


@pytest.fixture
def store(aws: AwsResources, platform: PlatformConfig) -> Store:
    return Store(aws, platform)


def pytest_report_header() -> list[str]:
    return [f"synapscribe: max_model_len={load_platform().vllm.max_model_len} ci={os.environ.get('CI', '')}"]
