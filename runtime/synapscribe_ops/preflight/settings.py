"""The environment's settings as preflight reads them from cdk.json: a small model of only what
the checks need (the runtime never imports the CDK app, a higher layer);
`tests/cdk/test_preflight_settings.py` holds it to the CDK app's own reading
(`synapscribe_cdk.config`)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ZONE_LETTERS = "abcdefgh"
#: The sweeper's reserved concurrency (one run at a time), a fixed part of the API stack;
#: tests/cdk/test_preflight_settings.py holds `reserved_total` to the synthesized templates.
SWEEPER_RESERVED_CONCURRENCY = 1

ENVIRONMENTS_KEY = "synapscribe:environments"


class _Read(BaseModel):
    # Only what preflight needs; the CDK app validates the whole block (extra keys are its own).
    model_config = ConfigDict(extra="ignore", frozen=True)


class CapacityRead(_Read):
    max: int = Field(ge=1)


class ReservedRead(_Read):
    validation: int = Field(ge=1)
    websocket_handler: int = Field(ge=1)


class DeploySettings(_Read):
    """One environment of cdk.json's `synapscribe:environments`, as preflight reads it."""

    name: str
    removal: str
    cors_allowed_origins: list[str] = Field(min_length=1)
    max_azs: int = Field(ge=1)
    #: A list, or a map of region to list (the CDK app's `EnvironmentConfig.availability_zones`).
    availability_zones: list[str] | dict[str, list[str]] | None = None
    instance_types: list[str] = Field(min_length=1)
    capacity: CapacityRead
    reserved_concurrency: ReservedRead
    alarm_email: str | None = None

    @property
    def reserved_total(self) -> int:
        """Every function's reserved concurrency in the API stack (validation, the WebSocket
        handler and the sweeper)."""
        r = self.reserved_concurrency
        return r.validation + r.websocket_handler + SWEEPER_RESERVED_CONCURRENCY

    @property
    def production(self) -> bool:
        return self.removal == "retain"

    def configured_zones(self, region: str) -> list[str] | None:
        """The zones listed for `region`, None when the default letters apply."""
        zones = self.availability_zones
        if isinstance(zones, dict):
            return list(zones[region]) if region in zones else None
        return list(zones) if zones is not None else None

    def zones_in(self, region: str) -> list[str]:
        """The zones the Network stack uses: the listed ones, else `<region>a`, `b`, … (the CDK
        app's `EnvironmentConfig.zones_in`; the preflight's zone check is what makes that safe)."""
        zones = self.configured_zones(region)
        if zones is not None:
            return zones
        return [f"{region}{letter}" for letter in ZONE_LETTERS[: self.max_azs]]


class SettingsError(ValueError):
    """cdk.json cannot be read or does not name the environment."""


def load_settings(cdk_json: Path, env_name: str | None) -> DeploySettings:
    try:
        context = json.loads(cdk_json.read_text(encoding="utf-8"))["context"]
        environments = context[ENVIRONMENTS_KEY]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(f"cannot read context.{ENVIRONMENTS_KEY} from {cdk_json}: {exc}") from None
    name = env_name or context.get("env", "dev")
    if not isinstance(environments, dict) or name not in environments:
        known = ", ".join(sorted(environments)) if isinstance(environments, dict) else "none"
        raise SettingsError(f"{cdk_json} has no environment {name!r} (has: {known})")
    try:
        return DeploySettings(name=name, **environments[name])
    except (ValidationError, TypeError) as exc:
        raise SettingsError(f"{cdk_json}: {ENVIRONMENTS_KEY}.{name}: {exc}") from None
