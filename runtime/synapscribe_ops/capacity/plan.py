"""The capacity planner: KV cache, full-context sequences, lecture limits, instances and cost.

Memory model (vLLM's own accounting, simplified): vLLM may use `gpu_memory_utilization` of the
GPU's total memory (as the driver reports it). From that budget it takes the weights, the peak
activation memory of its profiling forward pass and the memory outside PyTorch's allocator (CUDA
context, CUDA graphs); what is left becomes the KV cache. The activation and non-PyTorch share is
not computable from architecture numbers alone, so it is an explicit allowance
(`DEFAULT_OVERHEAD_GIB`, overridable) rather than a hidden fudge.

KV cache per token = 2 (K and V) x layers x KV heads x head dim x bytes per element.

Lecture limits are not re-derived here: they come from the platform configuration at each context
length (`PlatformConfig.with_max_model_len`), the same code `planner.plan_lecture` uses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from synapscribe.platform import PlatformConfig, load_platform

from synapscribe_ops.capacity.coldstart_cost import ColdStartPrices
from synapscribe_ops.capacity.worstcase import WorstCasePrices

GIB = 1024**3
MIB = 1024**2
#: Average hours in a month (8,760 h / 12).
HOURS_PER_MONTH = 730.0
#: Profiling-pass activations (at max_num_batched_tokens, with the audio encoder's dummy input),
#: CUDA context and CUDA graphs: what vLLM keeps besides weights and KV cache. A planning
#: allowance for a ~3-5 B model at 2,048 batched tokens; read the real figure from vLLM's start-up
#: log ("Available KV cache memory") and pass it back with --overhead-gib.
DEFAULT_OVERHEAD_GIB = 2.0

DTYPE_BYTES: dict[str, int] = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1}


class CapacityInputError(ValueError):
    """Bad planner input; `flag` names the command-line flag (or setting) that holds it."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag


@dataclass(frozen=True)
class ModelArch:
    name: str
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    weight_bytes: int

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


#: Qwen2.5-Omni-3B's thinker (design facts): 36 layers, 2 KV heads, head dim 128, bf16. Weights
#: ~5.5 B parameters in bf16 = ~11 GB for the whole checkpoint. vLLM serves the thinker only
#: (~4.7 B), so counting all of it leaves a margin.
MODEL_PRESETS: dict[str, ModelArch] = {
    "qwen2.5-omni-3b": ModelArch(
        name="qwen2.5-omni-3b",
        layers=36,
        kv_heads=2,
        head_dim=128,
        dtype="bfloat16",
        weight_bytes=11_000_000_000,
    ),
}


class InstanceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str = Field(min_length=1)
    gpu_memory_mib: int = Field(gt=0)
    on_demand_usd_per_hour: float = Field(ge=0)
    spot_usd_per_hour: float = Field(ge=0)
    #: Local NVMe instance store (GB); 0: none.
    instance_store_gb: int = Field(default=0, ge=0)


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1)
    instances: dict[str, InstanceSpec] = Field(min_length=1)
    cold_start: ColdStartPrices
    worst_case: WorstCasePrices


def _read_yaml(path: Path, flag: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CapacityInputError(flag, f"cannot read {path}: {exc}") from None


def _validate_table(data: Any, source: str, flag: str) -> PriceTable:
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise CapacityInputError(flag, f"{source}: {problems}") from None


def load_price_table(override: Path | None = None) -> PriceTable:
    """The packaged table, with an override file's instances merged in field by field."""
    text = (
        resources.files("synapscribe_ops.capacity")
        .joinpath("capacity_prices.yaml")
        .read_text(encoding="utf-8")
    )
    base: dict[str, Any] = yaml.safe_load(text)
    if override is None:
        return _validate_table(base, "capacity_prices.yaml", "capacity_prices.yaml")
    extra = _read_yaml(override, "--prices")
    if not isinstance(extra, dict):
        raise CapacityInputError("--prices", f"{override}: expected a mapping with `instances:`")
    unknown = set(extra) - {"region", "instances", "cold_start", "worst_case"}
    if unknown:
        raise CapacityInputError("--prices", f"{override}: unknown keys {sorted(unknown)}")
    instances = extra.get("instances", {})
    if not isinstance(instances, dict):
        raise CapacityInputError("--prices", f"{override}: `instances` must be a mapping")
    merged = {name: dict(spec) for name, spec in base["instances"].items()}
    for name, spec in instances.items():
        if not isinstance(spec, dict):
            raise CapacityInputError("--prices", f"{override}: instances.{name} must be a mapping")
        merged[str(name)] = {**merged.get(str(name), {}), **spec}
    cold_start = extra.get("cold_start", {})
    if not isinstance(cold_start, dict):
        raise CapacityInputError("--prices", f"{override}: `cold_start` must be a mapping")
    data = {
        "region": extra.get("region", base["region"]),
        "instances": merged,
        "cold_start": {**base["cold_start"], **cold_start},
        "worst_case": {**base["worst_case"], **(extra.get("worst_case") or {})},
    }
    return _validate_table(data, str(override), "--prices")


@dataclass(frozen=True)
class ContextFit:
    """One context length on one instance."""

    max_model_len: int
    kv_bytes_per_sequence: int
    full_sequences_fit: int
    #: Sequences one instance serves at once: min(max_num_seqs, full_sequences_fit).
    concurrent_sequences: int
    kv_bytes_for_max_num_seqs: int
    max_audio_lecture_seconds: int
    max_transcript_lecture_seconds: int
    instances_needed: int | None
    cost: dict[str, float] | None


@dataclass(frozen=True)
class InstancePlan:
    instance: str
    gpu: str
    gpu_memory_bytes: int
    usable_bytes: int
    weight_bytes: int
    overhead_bytes: int
    kv_cache_bytes: int
    kv_cache_tokens: int
    contexts: list[ContextFit] = field(default_factory=list)


@dataclass(frozen=True)
class CapacityPlan:
    model: ModelArch
    kv_bytes_per_token: int
    gpu_memory_utilization: float
    max_num_seqs: int
    #: None when no demand was given: each row is then one instance (the smallest fleet that serves).
    students: int | None
    duty_cycle: float
    concurrent_requests: int | None
    hours_per_month: float
    region: str
    instances: list[InstancePlan]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"]["kv_bytes_per_token"] = self.model.kv_bytes_per_token
        return data


def concurrent_requests(students: int, duty_cycle: float) -> int:
    """Requests in flight at the busiest moment: each student has one in flight `duty_cycle` of the time."""
    return math.ceil(students * duty_cycle - 1e-9) if students else 0


def plan_capacity(
    model: ModelArch,
    instance_names: list[str],
    *,
    prices: PriceTable,
    platform: PlatformConfig | None = None,
    context_lengths: tuple[int, ...] | None = None,
    gpu_memory_utilization: float | None = None,
    max_num_seqs: int | None = None,
    overhead_gib: float = DEFAULT_OVERHEAD_GIB,
    students: int | None = None,
    duty_cycle: float = 1.0,
    hours_per_month: float = HOURS_PER_MONTH,
) -> CapacityPlan:
    p = platform or load_platform()
    if context_lengths is None:
        context_lengths = p.context_lengths
    util = p.vllm.gpu_memory_utilization if gpu_memory_utilization is None else gpu_memory_utilization
    seqs = p.vllm.max_num_seqs if max_num_seqs is None else max_num_seqs
    _check(0 < util < 1, "--utilization", f"must be between 0 and 1 (exclusive), got {util}")
    _check(seqs > 0, "--max-num-seqs", f"must be positive, got {seqs}")
    _check(overhead_gib >= 0, "--overhead-gib", f"must not be negative, got {overhead_gib}")
    _check(students is None or students >= 0, "--students", f"must not be negative, got {students}")
    _check(0 < duty_cycle <= 1, "--duty-cycle", f"must be in (0, 1], got {duty_cycle}")
    _check(hours_per_month > 0, "--hours-per-month", f"must be positive, got {hours_per_month}")
    for name in instance_names:
        if name not in prices.instances:
            raise CapacityInputError(
                "--instance", f"unknown instance type {name!r} (known: {', '.join(sorted(prices.instances))})"
            )
    # Validates each context length against the model's limit and the platform's reserves.
    platforms = {}
    for length in context_lengths:
        try:
            platforms[length] = p.with_max_model_len(length)
        except ValueError as exc:
            raise CapacityInputError("--max-model-len", str(exc)) from None

    per_token = model.kv_bytes_per_token
    in_flight = None if students is None else concurrent_requests(students, duty_cycle)
    overhead_bytes = int(overhead_gib * GIB)
    plans: list[InstancePlan] = []
    for name in instance_names:
        spec = prices.instances[name]
        total = spec.gpu_memory_mib * MIB
        usable = int(total * util)
        kv_bytes = max(0, usable - model.weight_bytes - overhead_bytes)
        kv_tokens = kv_bytes // per_token
        contexts: list[ContextFit] = []
        for length, at_length in platforms.items():
            fit = kv_tokens // length
            concurrent = min(seqs, fit)
            needed: int | None = None
            cost: dict[str, float] | None = None
            if concurrent > 0:
                needed = 1 if in_flight is None else math.ceil(in_flight / concurrent)
                hourly_od = needed * spec.on_demand_usd_per_hour
                hourly_spot = needed * spec.spot_usd_per_hour
                cost = {
                    "on_demand_per_hour": round(hourly_od, 4),
                    "spot_per_hour": round(hourly_spot, 4),
                    "on_demand_per_month": round(hourly_od * hours_per_month, 2),
                    "spot_per_month": round(hourly_spot * hours_per_month, 2),
                }
            contexts.append(
                ContextFit(
                    max_model_len=length,
                    kv_bytes_per_sequence=per_token * length,
                    full_sequences_fit=fit,
                    concurrent_sequences=concurrent,
                    kv_bytes_for_max_num_seqs=per_token * length * seqs,
                    max_audio_lecture_seconds=at_length.max_audio_lecture_seconds,
                    max_transcript_lecture_seconds=at_length.max_transcript_lecture_seconds,
                    instances_needed=needed,
                    cost=cost,
                )
            )
        plans.append(
            InstancePlan(
                instance=name,
                gpu=spec.gpu,
                gpu_memory_bytes=total,
                usable_bytes=usable,
                weight_bytes=model.weight_bytes,
                overhead_bytes=overhead_bytes,
                kv_cache_bytes=kv_bytes,
                kv_cache_tokens=kv_tokens,
                contexts=contexts,
            )
        )
    return CapacityPlan(
        model=model,
        kv_bytes_per_token=per_token,
        gpu_memory_utilization=util,
        max_num_seqs=seqs,
        students=students,
        duty_cycle=duty_cycle,
        concurrent_requests=in_flight,
        hours_per_month=hours_per_month,
        region=prices.region,
        instances=plans,
    )


def _check(ok: bool, flag: str, message: str) -> None:
    if not ok:
        raise CapacityInputError(flag, message)


def build_model(
    preset: str | None,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    dtype: str | None = None,
    weights_gib: float | None = None,
) -> ModelArch:
    """A preset with any of its numbers replaced, or a model given entirely by its numbers."""
    if preset is not None:
        key = preset.lower()
        if key not in MODEL_PRESETS:
            raise CapacityInputError(
                "--model", f"unknown model {preset!r} (known: {', '.join(sorted(MODEL_PRESETS))})"
            )
        base = MODEL_PRESETS[key]
    else:
        missing = [
            flag
            for flag, value in (
                ("--layers", layers),
                ("--kv-heads", kv_heads),
                ("--head-dim", head_dim),
                ("--weights-gib", weights_gib),
            )
            if value is None
        ]
        if missing:
            raise CapacityInputError(missing[0], "required when no --model preset is given")
        base = ModelArch("custom", 1, 1, 1, dtype or "bfloat16", 0)
    for flag, value in (("--layers", layers), ("--kv-heads", kv_heads), ("--head-dim", head_dim)):
        if value is not None and value <= 0:
            raise CapacityInputError(flag, f"must be positive, got {value}")
    if weights_gib is not None and weights_gib < 0:
        raise CapacityInputError("--weights-gib", f"must not be negative, got {weights_gib}")
    if dtype is not None and dtype not in DTYPE_BYTES:
        raise CapacityInputError("--dtype", f"unknown dtype {dtype!r} (known: {', '.join(DTYPE_BYTES)})")
    changed = any(v is not None for v in (layers, kv_heads, head_dim, dtype, weights_gib))
    return ModelArch(
        name=base.name + (" (modified)" if changed and preset is not None else ""),
        layers=layers if layers is not None else base.layers,
        kv_heads=kv_heads if kv_heads is not None else base.kv_heads,
        head_dim=head_dim if head_dim is not None else base.head_dim,
        dtype=dtype if dtype is not None else base.dtype,
        weight_bytes=int(weights_gib * GIB) if weights_gib is not None else base.weight_bytes,
    )
