"""Cold start by cost: how fast each way of getting the model weights onto a new host is, and what it costs.

A new GPU host's start-up is boot + reading the weights + vLLM's load and warm-up
(platform.yaml fleet.boot_seconds, fleet.engine_warmup_seconds; the read is what the options
change). The root volume is restored from the AMI's snapshot:

- `lazy` (AWS's default): blocks come from S3 on first read, at a rate AWS does not publish. The
  read time is what fleet.host_startup_seconds leaves after boot and warm-up (the platform's
  estimate, until `synapscribe bench full` measures launch-to-ready). No cost.
- `provisioned-rate-N`: EBS Provisioned Rate for Volume Initialization at N MiB/s (100-300): the
  whole snapshot is restored in snapshot / N (Amazon EBS User Guide, "Initialize Amazon EBS
  volumes"), billed once per launch: price x snapshot GiB x N (cold_start prices).
- `fast-snapshot-restore`: the volume is fully initialized at creation; the weights are read at the
  gp3 volume's throughput. Billed per hour per zone it is enabled in, launches or not, and only
  `credits_per_zone` volumes at once get it (AWS: MAX(1, MIN(10, 1024 / snapshot GiB)) per zone,
  "Amazon EBS fast snapshot restore volume creation credits").
- `local-nvme`: the weights are downloaded from S3 to the instance store at boot (only types with
  one; the bake would leave them out of the AMI). Costs the weights' S3 storage.

Every time is computed from the model's size and the rates in capacity_prices.yaml, never typed in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from synapscribe.platform import PlatformConfig

MIB = 1024**2
GIB = 1024**3
#: AWS's accepted range for the provisioned rate (MiB/s), and the rates compared.
PROVISIONED_RATES = (100, 200, 300)


class ColdStartPrices(BaseModel):
    """The `cold_start` block of capacity_prices.yaml (each figure's source is named there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    read_on: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    #: The AMI's snapshot data a root volume restores (OS, driver, runtimes and the weights).
    snapshot_gib: float = Field(gt=0)
    provisioned_rate_usd_per_gib_per_mib_s: float = Field(ge=0)
    fast_snapshot_restore_usd_per_zone_hour: float = Field(ge=0)
    s3_storage_usd_per_gb_month: float = Field(ge=0)
    gp3_throughput_mib_s: float = Field(gt=0)
    s3_download_mib_s: float = Field(gt=0)


@dataclass(frozen=True)
class ColdStartOption:
    name: str
    weights_read_seconds: int
    expected_startup_seconds: int
    usd_per_launch: float
    usd_per_month: float
    note: str


@dataclass(frozen=True)
class ColdStartComparison:
    weight_bytes: int
    launches_per_month: int
    zones: int
    hours_per_month: float
    prices: ColdStartPrices
    options: list[ColdStartOption]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prices"] = self.prices.model_dump()
        return data


def _option(
    name: str, read: float, fixed: int, per_launch: float, per_month_fixed: float, launches: int, note: str
) -> ColdStartOption:
    return ColdStartOption(
        name=name,
        weights_read_seconds=math.ceil(read),
        expected_startup_seconds=fixed + math.ceil(read),
        usd_per_launch=round(per_launch, 4),
        usd_per_month=round(per_launch * launches + per_month_fixed, 2),
        note=note,
    )


def compare_cold_start(
    platform: PlatformConfig,
    prices: ColdStartPrices,
    *,
    weight_bytes: int,
    instance_store_gb: dict[str, int],
    launches_per_month: int,
    zones: int,
    hours_per_month: float,
) -> ColdStartComparison:
    fleet = platform.fleet
    fixed = fleet.boot_seconds + fleet.engine_warmup_seconds
    weights_mib = weight_bytes / MIB
    snapshot_mib = prices.snapshot_gib * 1024
    lazy = fleet.host_startup_seconds - fixed
    options = [
        _option(
            "lazy (default)",
            lazy,
            fixed,
            0.0,
            0.0,
            launches_per_month,
            f"{weights_mib / lazy:.0f} MiB/s implied by fleet.host_startup_seconds; unpredictable",
        )
    ]
    for rate in PROVISIONED_RATES:
        per_launch = prices.provisioned_rate_usd_per_gib_per_mib_s * prices.snapshot_gib * rate
        read = max(snapshot_mib / rate, weights_mib / prices.gp3_throughput_mib_s)
        options.append(
            _option(
                f"provisioned-rate-{rate}",
                read,
                fixed,
                per_launch,
                0.0,
                launches_per_month,
                f"whole {prices.snapshot_gib:g} GiB snapshot at {rate} MiB/s",
            )
        )
    credits = max(1, min(10, math.floor(1024 / prices.snapshot_gib)))
    options.append(
        _option(
            "fast-snapshot-restore",
            weights_mib / prices.gp3_throughput_mib_s,
            fixed,
            0.0,
            prices.fast_snapshot_restore_usd_per_zone_hour * zones * hours_per_month,
            launches_per_month,
            f"enabled in {zones} zones all month; {credits} launches at once per zone, then lazy",
        )
    )
    without = sorted(t for t, gb in instance_store_gb.items() if gb * 1e9 < weight_bytes)
    options.append(
        _option(
            "local-nvme",
            weights_mib / prices.s3_download_mib_s,
            fixed,
            0.0,
            weight_bytes / 1e9 * prices.s3_storage_usd_per_gb_month,
            launches_per_month,
            "S3 to instance store at boot (not built)"
            + (f"; no room on {', '.join(without)}" if without else ""),
        )
    )
    return ColdStartComparison(weight_bytes, launches_per_month, zones, hours_per_month, prices, options)


def render_cold_start(c: ColdStartComparison, platform: PlatformConfig) -> str:
    fleet = platform.fleet
    p = c.prices
    lines = [
        f"cold start: weights {c.weight_bytes / GIB:.1f} GiB, AMI snapshot {p.snapshot_gib:g} GiB; "
        f"boot {fleet.boot_seconds} s + weights read + vLLM load and warm-up {fleet.engine_warmup_seconds} s; "
        f"{c.launches_per_month} launches a month, {c.zones} zones",
        f"prices: {p.source} (read {p.read_on})",
        f"fleet.host_startup_seconds (what grace, cooldowns, simulator and `warming` plan with): "
        f"{fleet.host_startup_seconds} s",
        "",
        "| option | weights read | expected start-up | $ per launch | $ per month | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for o in c.options:
        lines.append(
            f"| {o.name} | {o.weights_read_seconds} s | {o.expected_startup_seconds} s | "
            f"{o.usd_per_launch:.4f} | {o.usd_per_month:,.2f} | {o.note} |"
        )
    return "\n".join(lines)
