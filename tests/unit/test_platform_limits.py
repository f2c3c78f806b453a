"""platform.yaml's limits sections (quotas, rates, sweeper, storage.pending_upload_seconds) are
validated: an inconsistent value is refused naming the settings."""

from __future__ import annotations

import pytest
from synapscribe.platform import PlatformConfigError, load_platform, parse_platform


def _with(section: str, **values: object) -> dict[str, object]:
    data = load_platform().model_dump()
    data[section] = {**data[section], **values}
    return data


def test_the_packaged_limits_load() -> None:
    p = load_platform()
    assert p.quotas.lectures > 0 and p.rates.source_messages >= p.rates.connection_messages
    assert p.storage.pending_upload_seconds > p.limits.upload_url_expiry_seconds


def test_a_pending_lecture_must_outlive_its_upload_url() -> None:
    with pytest.raises(PlatformConfigError, match=r"pending_upload_seconds.*upload_url_expiry_seconds"):
        parse_platform(
            _with("storage", pending_upload_seconds=load_platform().limits.upload_url_expiry_seconds)
        )


def test_an_address_carries_at_least_one_connection() -> None:
    with pytest.raises(PlatformConfigError, match=r"source_messages.*connection_messages"):
        parse_platform(_with("rates", connection_messages=50, source_messages=49))


@pytest.mark.parametrize(
    ("section", "values"),
    [
        ("quotas", {"lectures": 0}),
        ("quotas", {"job_lease_seconds": 5}),
        ("rates", {"window_seconds": 0}),
        ("sweeper", {"max_resumes": 0}),
        ("sweeper", {"interval_seconds": 10}),
    ],
)
def test_out_of_range_values_are_refused(section: str, values: dict[str, object]) -> None:
    with pytest.raises(PlatformConfigError, match=f"{section}.{next(iter(values))}"):
        parse_platform(_with(section, **values))
