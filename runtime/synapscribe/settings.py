"""Settings that services read from their environment, validated at start-up.

Each service defines a `BaseSettings` subclass and loads it with `load_settings`, which turns a
validation failure into one message that names the environment variable, so a wrong value stops
the service with something an operator can act on.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class SettingsError(ValueError):
    """An environment variable is missing or has a wrong value."""


def _env_name(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    if alias is not None and hasattr(alias, "choices"):
        return " or ".join(str(c) for c in alias.choices)
    prefix = cls.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field}".upper()


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build `cls` from the environment; raise SettingsError naming each bad variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = str(err["loc"][0]) if err["loc"] else "?"
            value = err.get("input")
            shown = "" if isinstance(value, dict) or value is None else f" (got {str(value)[:60]!r})"
            problems.append(f"{_env_name(cls, field)}: {err['msg']}{shown}")
        raise SettingsError(f"{cls.__name__}: " + "; ".join(problems)) from None


class AwsResources(BaseSettings):
    """Where the platform's state lives. Shared by AgentCore and both Lambda handlers.

    boto3 itself reads AWS_REGION / AWS_DEFAULT_REGION, credentials, and AWS_ENDPOINT_URL
    (set by the local stack to its moto server).
    """

    model_config = SettingsConfigDict(env_prefix="SYNAPSCRIBE_", extra="ignore", frozen=True)

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    connections_table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    lectures_table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    sessions_table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    #: Per-owner quotas and message rates (quotas.py, edge/rates.py).
    limits_table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    #: The AgentCore host registry (host_registry.py); unset: no lecture-affinity routing, every
    #: hand-off goes through the balancer.
    hosts_table: str | None = Field(default=None, min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
