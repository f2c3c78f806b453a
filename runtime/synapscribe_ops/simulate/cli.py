"""`synapscribe simulate`: one day of students against the fleet, two scaling policies side by side.

Inputs (flags; defaults in brackets): the environment's capacity and `scaling` block from cdk.json,
platform.yaml's max_num_seqs, agentcore.queue_timeout_seconds, agentcore.admission_aging_seconds and
fleet.host_startup_seconds, the
price of the environment's first instance type (capacity_prices.yaml), and the report's latencies
(see workload.py). Seeded: the same flags print the same figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from synapscribe.cli_types import non_negative_float, number, positive_int
from synapscribe.platform import load_platform

from synapscribe_ops.capacity.plan import CapacityInputError, load_price_table
from synapscribe_ops.simulate.engine import FleetModel, Simulation
from synapscribe_ops.simulate.policy import Floor, Policy, ScalingSettings, cron_hour
from synapscribe_ops.simulate.report import DayFigures, figures, side_by_side
from synapscribe_ops.simulate.workload import Workload, day_of_questions

DAY_SECONDS = 24 * 3600.0
#: `--choose`: the candidates tried, and what a candidate must achieve to be chosen (then the
#: cheapest wins): at most this share of questions refused, and this 95th-percentile wait.
CHOOSE_TARGETS = (4.0, 6.0)
CHOOSE_SCALE_IN_COOLDOWNS = (900, 1800)
CHOOSE_MAX_BUSY_RATE = 0.001
CHOOSE_MAX_P95_WAIT_SECONDS = 2.0


class SimulateInputError(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="prod", help="environment in cdk.json (default prod)")
    parser.add_argument("--cdk-json", type=Path, default=None, help="cdk.json (default: found upwards)")
    parser.add_argument("--sessions", type=positive_int, default=30000, help="student sessions a day (30000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--policy",
        default="cdk",
        help="`cdk` (the environment's scaling block), `schedule` (no target tracking), or "
        "target=N,out=SECONDS,in=SECONDS",
    )
    parser.add_argument("--against", default="schedule", help="the policy to compare with (schedule)")
    parser.add_argument(
        "--choose", action="store_true", help="try the candidate policies and print the one chosen"
    )
    parser.add_argument(
        "--spot-rate",
        type=non_negative_float,
        default=0.01,
        help="spot interruptions per instance-hour (0.01)",
    )
    parser.add_argument("--market", choices=("spot", "on-demand"), default="spot")
    parser.add_argument("--voice-share", type=number(minimum=0, maximum=1), default=0.6)
    parser.add_argument("--questions-per-session", type=number(minimum=1, maximum=100), default=4.0)
    parser.add_argument("--lecture-minutes", type=number(above=0, maximum=600), default=45.0)
    parser.add_argument("--startup-seconds", type=number(above=0, maximum=7200), default=None)
    parser.add_argument(
        "--aging",
        type=number(minimum=0, maximum=600),
        default=None,
        help="admission's aging bound in seconds (platform.yaml agentcore.admission_aging_seconds)",
    )
    parser.add_argument(
        "--compare-admission",
        action="store_true",
        help="run both policies under each admission order: answers first, first come first served, aged",
    )
    parser.add_argument(
        "--compare-affinity",
        action="store_true",
        help="run the policy with each host's model server holding its last lectures (platform.yaml "
        "vllm.processor_cache_lectures): lecture-affinity routing against the least-loaded balancer",
    )
    parser.add_argument(
        "--prefill-tokens-per-second",
        type=number(above=0, maximum=1e7),
        default=Workload.prefill_tokens_per_second,
        help="the cold prefill's rate: a question on a host without its lecture pays the lecture's "
        f"tokens at this rate ({Workload.prefill_tokens_per_second:g})",
    )
    parser.add_argument(
        "--held-lectures",
        type=positive_int,
        default=None,
        help="with --compare-affinity: lectures whose prefix one host keeps (default platform.yaml "
        "vllm.processor_cache_lectures; the GPU's KV cache may hold fewer)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def find_cdk_json(given: Path | None) -> Path:
    if given is not None:
        return given
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "cdk.json").is_file():
                return candidate / "cdk.json"
    raise SimulateInputError("--cdk-json: no cdk.json above the working directory; give its path")


def environment(path: Path, env: str) -> dict[str, Any]:
    try:
        context = json.loads(path.read_text(encoding="utf-8"))["context"]["synapscribe:environments"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SimulateInputError(f"--cdk-json: cannot read environments from {path}: {exc}") from None
    if env not in context:
        raise SimulateInputError(f"--env: {env!r} is not in {path} ({', '.join(sorted(context))})")
    return dict(context[env])


def parse_policy(text: str, env: dict[str, Any]) -> Policy:
    cap = env.get("capacity", {})
    try:
        morning, night = cap.get("morning_scale_out_cron"), cap.get("night_scale_in_cron")
        floor = (
            Floor(cap["desired"], cap["min"], cron_hour(morning), cron_hour(night))
            if morning and night
            else Floor(cap["desired"], cap["desired"], 0, 24)
        )
        scaling: ScalingSettings | None
        if text == "schedule":
            scaling = None
        elif text == "cdk":
            if "scaling" not in env:
                raise SimulateInputError("--policy cdk: the environment has no `scaling` block")
            scaling = ScalingSettings.model_validate(env["scaling"])
        else:
            scaling = _spec(text)
        return Policy(text, cap["min"], cap["max"], floor, scaling)
    except (KeyError, ValueError, ValidationError) as exc:
        if isinstance(exc, SimulateInputError):
            raise
        raise SimulateInputError(f"policy {text!r}: {exc}") from None


def _spec(text: str) -> ScalingSettings:
    keys = {
        "target": "target_in_flight_per_instance",
        "out": "scale_out_cooldown_seconds",
        "in": "scale_in_cooldown_seconds",
    }
    fields: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in keys:
            raise SimulateInputError(
                f"policy {text!r}: expected `schedule`, `cdk` or target=N,out=SECONDS,in=SECONDS"
            )
        try:
            fields[keys[key]] = float(value)
        except ValueError:
            raise SimulateInputError(f"policy {text!r}: {key}={value!r} is not a number") from None
    try:
        return ScalingSettings.model_validate(fields)
    except ValidationError as exc:
        raise SimulateInputError(
            f"policy {text!r}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from None


def simulate_day(
    policy: Policy, model: FleetModel, workload: Workload, seed: int, usd_per_hour: float
) -> DayFigures:
    questions = day_of_questions(workload, seed)
    out = Simulation(model, policy, seed=seed + 1, horizon=DAY_SECONDS).run(questions)
    return figures(out, usd_per_hour, lectures=model.held_lectures > 0)


def affinity_pair(
    policy: Policy, model: FleetModel, workload: Workload, seed: int, usd_per_hour: float, held: int
) -> list[tuple[str, DayFigures]]:
    """The policy's day (same seed) with lectures held per host, routed by lecture and by load."""
    return [
        (
            f"{_label(policy)}: {routing}",
            simulate_day(
                policy,
                dataclasses.replace(model, held_lectures=held, routing=routing),
                workload,
                seed,
                usd_per_hour,
            ),
        )
        for routing in ("affinity", "least-loaded")
    ]


def _label(p: Policy) -> str:
    s = p.scaling
    if s is None:
        return "schedule"
    return f"target {s.target_in_flight_per_instance:g} out {s.scale_out_cooldown_seconds} in {s.scale_in_cooldown_seconds}"


def choose(
    env: dict[str, Any], run: Any, startup: float
) -> tuple[tuple[Policy, DayFigures], list[tuple[str, DayFigures]]]:
    """Every candidate's day; the cheapest that meets the busy and wait bounds (else the fewest refused)."""
    out_cooldown = int(math.ceil(startup / 60.0) * 60)
    tried: list[tuple[Policy, DayFigures]] = []
    for target in CHOOSE_TARGETS:
        for cooldown_in in CHOOSE_SCALE_IN_COOLDOWNS:
            spec = f"target={target:g},out={out_cooldown},in={cooldown_in}"
            policy = parse_policy(spec, env)
            tried.append((policy, run(policy)))
    good = [
        t
        for t in tried
        if t[1].busy_rate <= CHOOSE_MAX_BUSY_RATE and t[1].wait_p95 <= CHOOSE_MAX_P95_WAIT_SECONDS
    ]
    best = min(good, key=lambda t: t[1].cost_usd) if good else min(tried, key=lambda t: t[1].busy_rate)
    return best, [(_label(p), f) for p, f in tried]


def admission_orders(
    policies: list[Policy], model: FleetModel, workload: Workload, seed: int, usd_per_hour: float
) -> list[tuple[str, DayFigures]]:
    """Each policy's day (same seed) under answers first, first come first served and aged admission."""
    orders = (("answers first", math.inf), ("fcfs", 0.0), (f"aged {model.aging:g} s", model.aging))
    return [
        (
            f"{_label(p)}: {name}",
            simulate_day(p, dataclasses.replace(model, aging=aging), workload, seed, usd_per_hour),
        )
        for p in policies
        for name, aging in orders
    ]


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (SimulateInputError, CapacityInputError) as exc:
        print(f"synapscribe simulate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    platform = load_platform()
    env = environment(find_cdk_json(args.cdk_json), args.env)
    instance_type = env.get("instance_types", ["g5.2xlarge"])[0]
    prices = load_price_table().instances
    if instance_type not in prices:
        raise SimulateInputError(f"{instance_type}: not in the price table (capacity_prices.yaml)")
    spec = prices[instance_type]
    usd = spec.spot_usd_per_hour if args.market == "spot" else spec.on_demand_usd_per_hour
    startup = (
        args.startup_seconds if args.startup_seconds is not None else platform.fleet.host_startup_seconds
    )
    model = FleetModel(
        slots=platform.vllm.max_num_seqs,
        queue_timeout=platform.agentcore.queue_timeout_seconds,
        startup=startup,
        spot_rate_per_hour=args.spot_rate,
        aging=args.aging if args.aging is not None else platform.agentcore.admission_aging_seconds,
    )
    workload = Workload(
        sessions_per_day=args.sessions,
        questions_per_session=args.questions_per_session,
        voice_share=args.voice_share,
        lecture_minutes_mean=args.lecture_minutes,
        transcript_tokens_per_minute=platform.audio.transcript_tokens_per_minute,
        prefill_tokens_per_second=args.prefill_tokens_per_second,
    )

    def one(policy: Policy) -> DayFigures:
        return simulate_day(policy, model, workload, args.seed, usd)

    print(
        f"env {args.env}: {args.sessions} sessions a day (seed {args.seed}), {instance_type} {args.market} "
        f"${usd:g}/h, {model.slots} slots (max_num_seqs), start-up {startup:g} s, queue timeout "
        f"{model.queue_timeout:g} s, {args.spot_rate:g} spot interruptions per instance-hour, "
        f"admission aging {model.aging:g} s"
    )
    if args.choose:
        (first, first_figures), tried = choose(env, one, startup)
        print(
            f"candidates (chosen: the cheapest with busy rate <= {CHOOSE_MAX_BUSY_RATE:.1%} and p95 wait "
            f"<= {CHOOSE_MAX_P95_WAIT_SECONDS:g} s; scale-out cooldown = start-up, whole minutes):"
        )
        print(side_by_side(tried))
        print(f"chosen: {_label(first)}\n")
    else:
        first = parse_policy(args.policy, env)
        first_figures = one(first)
    second = parse_policy(args.against, env)
    if args.compare_affinity:
        held = args.held_lectures or platform.vllm.processor_cache_lectures
        pair = affinity_pair(first, model, workload, args.seed, usd, held)
    elif args.compare_admission:
        pair = admission_orders([first, second], model, workload, args.seed, usd)
    else:
        pair = [(_label(first), first_figures), (_label(second), one(second))]
    if args.json:
        print(json.dumps({name: {**f.__dict__, "busy_rate": f.busy_rate} for name, f in pair}, indent=2))
    else:
        print(side_by_side(pair))
    return 0
