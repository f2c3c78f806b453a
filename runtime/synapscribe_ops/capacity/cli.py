"""`synapscribe capacity`: KV cache, full-context sequences, lecture limits, instances and cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synapscribe.cli_types import non_negative_float, non_negative_int, positive_float, positive_int
from synapscribe.platform import load_platform

from synapscribe_ops.capacity.coldstart_cost import compare_cold_start, render_cold_start
from synapscribe_ops.capacity.plan import (
    DEFAULT_OVERHEAD_GIB,
    DTYPE_BYTES,
    GIB,
    HOURS_PER_MONTH,
    MIB,
    MODEL_PRESETS,
    CapacityInputError,
    CapacityPlan,
    ModelArch,
    build_model,
    load_price_table,
    plan_capacity,
)
from synapscribe_ops.capacity.worstcase import WorstCaseError, load_environment, worst_case
from synapscribe_ops.capacity.worstcase import render as render_worst_case


def add_arguments(parser: argparse.ArgumentParser) -> None:
    m = parser.add_argument_group("model (a preset, any of whose numbers can be replaced)")
    m.add_argument(
        "--model",
        default="qwen2.5-omni-3b",
        help=f"preset ({', '.join(MODEL_PRESETS)}) or `custom` (then give every number below)",
    )
    m.add_argument("--layers", type=positive_int, metavar="N", help="decoder layers")
    m.add_argument("--kv-heads", type=positive_int, metavar="N", help="key/value heads")
    m.add_argument("--head-dim", type=positive_int, metavar="N", help="head dimension")
    m.add_argument("--dtype", choices=tuple(DTYPE_BYTES), help="KV cache dtype")
    m.add_argument("--weights-gib", type=non_negative_float, metavar="GIB", help="weights in GPU memory")
    s = parser.add_argument_group("serving")
    s.add_argument(
        "--instance",
        action="append",
        metavar="TYPE",
        help="instance type (repeatable; default: every type in the price table)",
    )
    s.add_argument(
        "--utilization",
        type=positive_float,
        metavar="FRACTION",
        help="vLLM --gpu-memory-utilization (default: platform.yaml's)",
    )
    s.add_argument(
        "--max-model-len",
        type=positive_int,
        action="append",
        metavar="TOKENS",
        help="context length (repeatable; default: platform.yaml's vllm.max_model_len and the model's "
        "model.max_position_embeddings)",
    )
    s.add_argument(
        "--max-num-seqs",
        type=positive_int,
        metavar="N",
        help="sequences one vLLM serves at once (default: platform.yaml's)",
    )
    s.add_argument(
        "--overhead-gib",
        type=non_negative_float,
        default=DEFAULT_OVERHEAD_GIB,
        metavar="GIB",
        help="activations, CUDA context and graphs besides weights and KV cache (default: %(default)s)",
    )
    d = parser.add_argument_group("demand and cost")
    d.add_argument(
        "--students",
        type=non_negative_int,
        metavar="N",
        help="students using the platform (default: none given, so the cost table prices one instance, "
        "the smallest fleet, and says how many students it serves)",
    )
    d.add_argument(
        "--duty-cycle",
        type=positive_float,
        default=1.0,
        metavar="FRACTION",
        help="share of the time a student has a request in flight (default 1: every student at once)",
    )
    d.add_argument(
        "--hours-per-month", type=positive_float, default=HOURS_PER_MONTH, metavar="H", help="(default: 730)"
    )
    d.add_argument("--prices", type=Path, metavar="FILE", help="YAML overriding the instance/price table")
    c = parser.add_argument_group("cold start (with --cold-start: the start-up options by cost instead)")
    c.add_argument(
        "--cold-start",
        action="store_true",
        help="compare the ways of getting the weights onto a new host: start-up time and cost",
    )
    c.add_argument(
        "--launches-per-month",
        type=non_negative_int,
        default=100,
        metavar="N",
        help="instance launches a month: scale-outs and spot replacements (default: %(default)s)",
    )
    c.add_argument(
        "--zones",
        type=positive_int,
        default=2,
        metavar="N",
        help="Availability Zones the fleet launches in, each priced for fast snapshot restore (default: %(default)s)",
    )
    w = parser.add_argument_group(
        "worst case (with --worst-case: the month's bill under an environment's ceilings)"
    )
    w.add_argument(
        "--worst-case",
        action="store_true",
        help="print the month's worst-case cost under cdk.json's ceilings for --env, line by line",
    )
    w.add_argument(
        "--env", default="dev", metavar="NAME", help="the cdk.json environment (default: %(default)s)"
    )
    w.add_argument(
        "--cdk-json", type=Path, default=Path("cdk.json"), metavar="FILE", help="(default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _model(args: argparse.Namespace) -> ModelArch:
    """The model the flags name (a known one, or `custom` built from --layers ... --weights-gib)."""
    return build_model(
        None if args.model.lower() == "custom" else args.model,
        layers=args.layers,
        kv_heads=args.kv_heads,
        head_dim=args.head_dim,
        dtype=args.dtype,
        weights_gib=args.weights_gib,
    )


def run(args: argparse.Namespace) -> int:
    if args.cold_start:
        return run_cold_start(args)
    if args.worst_case:
        return run_worst_case(args)
    try:
        prices = load_price_table(args.prices)
        model = _model(args)
        plan = plan_capacity(
            model,
            args.instance or list(prices.instances),
            prices=prices,
            platform=load_platform(),
            context_lengths=tuple(args.max_model_len) if args.max_model_len else None,
            gpu_memory_utilization=args.utilization,
            max_num_seqs=args.max_num_seqs,
            overhead_gib=args.overhead_gib,
            students=args.students,
            duty_cycle=args.duty_cycle,
            hours_per_month=args.hours_per_month,
        )
    except CapacityInputError as exc:
        print(f"synapscribe capacity: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(plan.as_dict(), indent=2) if args.json else render_table(plan))
    return 0


def run_worst_case(args: argparse.Namespace) -> int:
    try:
        prices = load_price_table(args.prices)
        env = load_environment(args.cdk_json, args.env)
        preferred = env.instance_types[0]
        if preferred not in prices.instances:
            raise WorstCaseError(
                f"{preferred} (the preferred instance type) has no price in the table: add it"
            )
        case = worst_case(
            env, prices.worst_case, prices.instances[preferred].spot_usd_per_hour, load_platform()
        )
    except (CapacityInputError, WorstCaseError) as exc:
        print(f"synapscribe capacity: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(case.as_dict(), indent=2) if args.json else render_worst_case(case))
    return 0


def run_cold_start(args: argparse.Namespace) -> int:
    try:
        prices = load_price_table(args.prices)
        model = _model(args)
    except CapacityInputError as exc:
        print(f"synapscribe capacity: {exc}", file=sys.stderr)
        return 2
    names = args.instance or list(prices.instances)
    unknown = [n for n in names if n not in prices.instances]
    if unknown:
        print(
            f"synapscribe capacity: --instance: {', '.join(unknown)} not in the price table", file=sys.stderr
        )
        return 2
    platform = load_platform()
    comparison = compare_cold_start(
        platform,
        prices.cold_start,
        weight_bytes=model.weight_bytes,
        instance_store_gb={n: prices.instances[n].instance_store_gb for n in names},
        launches_per_month=args.launches_per_month,
        zones=args.zones,
        hours_per_month=args.hours_per_month,
    )
    print(
        json.dumps(comparison.as_dict(), indent=2) if args.json else render_cold_start(comparison, platform)
    )
    return 0


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:.1f} min"


def render_table(plan: CapacityPlan) -> str:
    m = plan.model
    lines = [
        f"model {m.name}: {m.layers} layers x {m.kv_heads} KV heads x head dim {m.head_dim} x {m.dtype_bytes} B "
        f"({m.dtype}) x 2 (K,V) = {plan.kv_bytes_per_token:,} B KV per token; weights {_gib(m.weight_bytes)}",
        f"gpu_memory_utilization {plan.gpu_memory_utilization}, max_num_seqs {plan.max_num_seqs}, "
        f"prices: {plan.region}",
        "",
        "| instance | GPU | GPU memory | usable | weights | overhead | KV cache | KV tokens |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ip in plan.instances:
        lines.append(
            f"| {ip.instance} | {ip.gpu} | {ip.gpu_memory_bytes // MIB:,} MiB | {_gib(ip.usable_bytes)} | "
            f"{_gib(ip.weight_bytes)} | {_gib(ip.overhead_bytes)} | {_gib(ip.kv_cache_bytes)} | "
            f"{ip.kv_cache_tokens:,} |"
        )
    lines += [
        "",
        "| instance | context | KV per full sequence | KV for max_num_seqs | full sequences fit | "
        "served at once | longest audio lecture | longest transcript lecture |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ip in plan.instances:
        for c in ip.contexts:
            lines.append(
                f"| {ip.instance} | {c.max_model_len:,} | {c.kv_bytes_per_sequence / MIB:,.0f} MiB | "
                f"{_gib(c.kv_bytes_for_max_num_seqs)} | {c.full_sequences_fit} | {c.concurrent_sequences} | "
                f"{_minutes(c.max_audio_lecture_seconds)} | {_minutes(c.max_transcript_lecture_seconds)} |"
            )
    if plan.students is None:
        demand = (
            "no --students given: the cost of one instance (the smallest fleet) and the students it serves "
            f"at once; pass --students N (and --duty-cycle) to size a fleet (month = {plan.hours_per_month:g} h)"
        )
    else:
        demand = (
            f"{plan.students} students at duty cycle {plan.duty_cycle:g} = {plan.concurrent_requests} requests "
            f"in flight; each instance serves min(max_num_seqs, full sequences fit) at once "
            f"(month = {plan.hours_per_month:g} h)"
        )
    lines += [
        "",
        demand,
        "",
        "| instance | context | instances | spot $/h | on-demand $/h | spot $/month | on-demand $/month |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ip in plan.instances:
        for c in ip.contexts:
            if c.cost is None:
                lines.append(f"| {ip.instance} | {c.max_model_len:,} | does not fit | - | - | - | - |")
                continue
            instances = str(c.instances_needed)
            if plan.students is None:
                instances += f" (serves {c.concurrent_sequences} at once)"
            lines.append(
                f"| {ip.instance} | {c.max_model_len:,} | {instances} | {c.cost['spot_per_hour']:.2f} | "
                f"{c.cost['on_demand_per_hour']:.2f} | {c.cost['spot_per_month']:,.0f} | "
                f"{c.cost['on_demand_per_month']:,.0f} |"
            )
    return "\n".join(lines)
