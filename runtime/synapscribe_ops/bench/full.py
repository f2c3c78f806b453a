"""`synapscribe bench full`: the original validation report's tables against a local or deployed stack.

Through the smoke test's WebSocket client (`synapscribe_ops.smoke.client`): transcription latency and
real-time factor, TTS latency, end-to-end voice questions, multi-turn follow-ups with and without
a prefix-cache hit, throughput by concurrent sessions, and the KV cache in use. Writes
`report.md` (each figure beside the report's target), `results.json` and PNG plots to `--out`.

Local: `synapscribe bench full --url ws://127.0.0.1:PORT [--local-info FILE]` (the local stack's
`--info-json` gives the TTS service and the model server's `/metrics`).
Deployed: `synapscribe bench full --stack-outputs cdk-outputs-dev.json [--metrics-url URL] [--gpu-url URL]`,
with both URLs on an SSM port-forward to an instance's AgentCore (its operator diagnostics,
`/v1/diagnostics/metrics` and `/v1/diagnostics/gpu`, answer only callers on the instance).
Exit status 0 when every case ran, 1 when some failed (the report says which), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from synapscribe.cli_types import comma_list, positive_float, positive_int

from synapscribe_ops.bench.full_scenarios import Bench, Tick, new_results
from synapscribe_ops.bench.full_stack import Connector, FullConfig
from synapscribe_ops.bench.plots import write_plots
from synapscribe_ops.bench.report import BenchResults, Row, render_markdown
from synapscribe_ops.smoke.client import ClientError, StackClient

if TYPE_CHECKING:
    from synapscribe_ops.smoke.aws_auth import GuestAccess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="WebSocket URL: ws://127.0.0.1:PORT (local) or wss://… (deployed)")
    parser.add_argument("--identity", help="local stack: the identity to connect as (default: a fresh one)")
    parser.add_argument("--stack-outputs", type=Path, help="deployed: `cdk deploy --outputs-file` JSON")
    parser.add_argument("--region", help="deployed: the stack's region")
    parser.add_argument("--identity-pool-id", help="deployed: the Cognito identity pool")
    parser.add_argument(
        "--guest-role-arn", help="deployed: the pool's guest role (Identity stack output GuestRoleArn)"
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs of each case (default 3)")
    parser.add_argument("--out", type=Path, default=Path("bench-full"), help="report directory")
    parser.add_argument(
        "--transcription-seconds",
        type=comma_list(positive_float),
        default=[30.0, 300.0, 1200.0],
        metavar="S,S,…",
        help="audio lengths for the transcription table (default 30,300,1200)",
    )
    parser.add_argument(
        "--tts-words",
        type=comma_list(positive_int),
        default=[20, 50, 100],
        metavar="N,N,…",
        help="text lengths for the TTS table (default 20,50,100)",
    )
    parser.add_argument(
        "--concurrency",
        type=comma_list(positive_int),
        default=[1, 2, 4, 8, 16],
        metavar="N,N,…",
        help="concurrent sessions for the throughput table (default 1,2,4,8,16)",
    )
    parser.add_argument(
        "--lecture-seconds",
        type=positive_float,
        default=60.0,
        help="length of the generated lecture the questions are about (default 60)",
    )
    parser.add_argument(
        "--metrics-url",
        help="Prometheus text of vLLM's /metrics (or AgentCore's operator diagnostics proxy of it)",
    )
    parser.add_argument(
        "--gpu-url",
        help="AgentCore's GPU diagnostics (nvidia-smi as JSON): http://127.0.0.1:PORT/v1/diagnostics/gpu "
        "over an SSM port-forward; fills the GPU memory columns",
    )
    parser.add_argument("--tts-url", help="the TTS service's base URL, when reachable (local stack)")
    parser.add_argument(
        "--local-info",
        type=Path,
        help="the local stack's --info-json: fills --tts-url and --metrics-url from its services",
    )
    parser.add_argument("--query-timeout", type=positive_float, default=120.0, help="seconds per question")
    parser.add_argument(
        "--ready-timeout", type=positive_float, default=1800.0, help="seconds for a lecture to become ready"
    )
    parser.add_argument(
        "--model-words",
        choices=("meaningful", "meaningless"),
        default="meaningful",
        help="meaningless: the model's words mean nothing (random weights, the engine tests' tiny model): "
        "the accuracy table is labelled not meaningful (the stand-in is detected by its label)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--group-name",
        help="deployed: the GPU Auto Scaling group whose launches the cold-start table reports "
        "(default: the AutoScalingGroupName output in --stack-outputs)",
    )
    parser.add_argument(
        "--env",
        type=environment_name,
        help="deployed: the CDK environment (cdk.json) whose metrics log group the cold-start table reads "
        "(default: the MetricsLogGroupName output in --stack-outputs)",
    )
    parser.add_argument(
        "--cold-start-hours",
        type=positive_float,
        default=24.0,
        help="deployed: launches of the last this many hours in the cold-start table (default 24)",
    )


def environment_name(value: str) -> str:
    """An environment name that can fill in platform.yaml's log group names (argparse type)."""
    from synapscribe.platform import load_platform

    try:
        load_platform().fleet.log_groups.names(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _fail(message: str) -> int:
    print(f"synapscribe bench full: error: {message}", file=sys.stderr)
    return 2


def metrics_url_of(model_base_url: str) -> str:
    """vLLM's /metrics beside its OpenAI base URL (`http://host:port/v1` -> `http://host:port/metrics`)."""
    parts = urlsplit(model_base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


def local_connector(url: str, identity: str) -> Connector:
    """Every connection as the same identity, so they share the benchmark's lectures."""

    async def connect(label: str) -> StackClient:
        return await StackClient.connect(url, identity=identity, label=label)

    return connect


def deployed_connector(url: str, access: GuestAccess) -> Connector:
    """One Cognito identity for the whole run; each `$connect` is signed afresh with its credentials."""
    from synapscribe_ops.smoke.aws_auth import CognitoIdentity, cognito_identity, signed_connect_headers

    ident: list[CognitoIdentity] = []

    async def connect(label: str) -> StackClient:
        if not ident:
            ident.append(
                await asyncio.to_thread(
                    cognito_identity, access.identity_pool_id, access.region, access.guest_role_arn
                )
            )
        headers = signed_connect_headers(url, ident[0].credentials, access.region)
        return await StackClient.connect(url, headers=headers, label=label)

    return connect


def run(args: argparse.Namespace) -> int:
    from synapscribe_ops.smoke.aws_auth import deployed_target

    try:
        url, access = deployed_target(
            args.url, args.region, args.identity_pool_id, args.guest_role_arn, args.stack_outputs
        )
    except ValueError as exc:
        return _fail(str(exc))
    if not url:
        return _fail("--url (or --stack-outputs) is required")
    if urlsplit(url).scheme not in ("ws", "wss"):
        return _fail(f"--url must be ws:// or wss://, not {url!r}")
    if access and args.identity:
        return _fail("--identity is for the local stack; a deployed stack's identity comes from Cognito")
    tts_url, metrics_url = args.tts_url, args.metrics_url
    if args.local_info:
        try:
            services = json.loads(args.local_info.read_text(encoding="utf-8"))["services"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return _fail(f"--local-info: cannot read the services from {args.local_info}: {exc}")
        tts_url = tts_url or services.get("tts")
        if services.get("model") and not metrics_url:
            metrics_url = metrics_url_of(services["model"])
    for flag, value in (("--metrics-url", metrics_url), ("--tts-url", tts_url), ("--gpu-url", args.gpu_url)):
        if value and urlsplit(value).scheme not in ("http", "https"):
            return _fail(f"{flag} must be an http(s) URL, not {value!r}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"--out: cannot create {args.out}: {exc}")

    mode = "deployed" if access else "local"
    connect = (
        deployed_connector(url, access)
        if access
        else local_connector(url, args.identity or f"bench-{uuid.uuid4().hex[:8]}")
    )
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    results = new_results(url, mode, args.repeats, started)
    results.model_words = args.model_words
    gpu = GpuReader(args.gpu_url) if args.gpu_url else None
    if gpu is not None:
        table = results.table("gpu")
        table.extra_columns += GPU_COLUMNS
        table.description += (
            " GPU memory and utilization from nvidia-smi through AgentCore's diagnostics (`--gpu-url`), "
            "summed over the instance's GPUs; the peak row keeps the highest reading."
        )
    with tempfile.TemporaryDirectory(prefix="synapscribe-bench-") as tmp:
        config = FullConfig(
            workdir=Path(tmp),
            repeats=args.repeats,
            transcription_seconds=args.transcription_seconds,
            tts_words=args.tts_words,
            concurrency=args.concurrency,
            lecture_seconds=args.lecture_seconds,
            metrics_url=metrics_url,
            tts_url=tts_url,
            query_timeout=args.query_timeout,
            ready_timeout=args.ready_timeout,
        )
        ok = asyncio.run(run_bench(connect, config, results, progress=not args.no_progress, gpu=gpu))
    if access:
        add_cold_start(results, args, access.region)
    write_report(results, args.out)
    label = " (model stand-in)" if results.standin else ""
    if results.words_not_meaningful() and not results.standin:
        label = " (accuracy not meaningful: the model's words mean nothing)"
    print(f"bench full: report {args.out / 'report.md'}{label}")
    return 0 if ok else 1


async def run_bench(
    connect: Connector,
    config: FullConfig,
    results: BenchResults,
    *,
    progress: bool,
    gpu: GpuReader | None = None,
) -> bool:
    from tqdm import tqdm

    total = config.repeats * (len(config.transcription_seconds) + len(config.concurrency) + 2)
    if config.tts_url:
        total += config.repeats * len(config.tts_words)
    bar = tqdm(total=total, desc="bench full", unit="case", disable=not progress, file=sys.stderr)

    def tick(what: str) -> None:
        bar.set_postfix_str(what)
        bar.update(1)

    bench = (
        Bench(connect, config, results, tick)
        if gpu is None
        else GpuBench(connect, config, results, tick, gpu)
    )
    try:
        try:
            await bench.setup()
        except (ClientError, Exception) as exc:
            results.notes.append(f"setup failed (connect, upload the benchmark lecture): {exc}")
            return False
        await bench.gpu_snapshot("idle, benchmark lecture ready")
        for scenario, stage in (
            (bench.transcription, "after the transcription cases"),
            (bench.tts_direct, None),
            (bench.end_to_end, "after the end-to-end questions"),
            (bench.follow_up, "after the follow-ups"),
            (bench.throughput, None),
        ):
            await scenario()
            if stage:
                await bench.gpu_snapshot(stage)
        bench.accuracy()
    finally:
        await bench.close()
        bar.close()
    if bench.metrics.problem:
        results.notes.append(
            f"vLLM metrics not read ({bench.metrics.problem}): prefix-cache hits and the KV cache table "
            "are empty. On a deployed stack vLLM listens on the instance's loopback only: use AgentCore's "
            "/v1/diagnostics/metrics over an SSM port-forward."
        )
    if gpu is not None and gpu.problem:
        results.notes.append(f"GPU memory not read ({gpu.problem}): its columns are empty.")
    return not any("failed" in row.note for table in results.tables for row in table.rows)


# --------------------------------------------------------------------------------------------
# GPU memory from AgentCore's diagnostics (nvidia-smi)

GPU_COLUMNS = ["GPU memory used (MiB)", "GPU memory total (MiB)", "GPU utilization (%)"]


class GpuReader:
    """`GET /v1/diagnostics/gpu`: [{index, name, memoryTotalMiB, memoryUsedMiB, utilizationPercent}]."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.problem: str | None = None

    async def read(self) -> list[dict[str, Any]] | None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(self.url)
        except httpx.HTTPError as exc:
            self.problem = f"{self.url}: {exc!r}"
            return None
        if response.status_code != 200:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            self.problem = f"{self.url} answered {response.status_code}: {str(detail)[:300]}"
            return None
        try:
            gpus = response.json()
            if not isinstance(gpus, list) or not all(isinstance(g, dict) for g in gpus):
                raise ValueError("not a list of GPUs")
        except ValueError as exc:
            self.problem = f"{self.url}: not the diagnostics' GPU list ({exc})"
            return None
        return gpus

    async def record(self, row: Row) -> None:
        """Fill the row's GPU columns with this reading, unless the row already shows more in use."""
        gpus = await self.read()
        if gpus is not None:
            record_gpus(row, gpus)


def _sum(gpus: list[dict[str, Any]], key: str) -> int | None:
    values = [v for v in (g.get(key) for g in gpus) if isinstance(v, int)]
    return sum(values) if values else None


def record_gpus(row: Row, gpus: list[dict[str, Any]]) -> None:
    """Memory summed over the GPUs, utilization of the busiest; a row keeps its highest memory reading."""
    used, total = _sum(gpus, "memoryUsedMiB"), _sum(gpus, "memoryTotalMiB")
    if used is None:
        return
    shown = row.extra.get(GPU_COLUMNS[0], "").replace(",", "")
    if shown.isdigit() and int(shown) >= used:
        return
    utils = [u for u in (g.get("utilizationPercent") for g in gpus) if isinstance(u, int)]
    row.extra[GPU_COLUMNS[0]] = f"{used:,}"
    row.extra[GPU_COLUMNS[1]] = f"{total:,}" if total is not None else "-"
    row.extra[GPU_COLUMNS[2]] = str(max(utils)) if utils else "-"


class GpuBench(Bench):
    """The benchmark with nvidia-smi's GPU memory beside vLLM's KV cache in the GPU table."""

    def __init__(
        self, connect: Connector, config: FullConfig, results: BenchResults, tick: Tick, gpu: GpuReader
    ) -> None:
        super().__init__(connect, config, results, tick)
        self.gpu = gpu

    async def gpu_snapshot(self, stage: str) -> None:
        await super().gpu_snapshot(stage)
        await self.gpu.record(self.results.table("gpu").row(stage))

    async def _poll_kv(self, stop: asyncio.Event, row: Row) -> None:
        async def poll_gpu() -> None:
            while not stop.is_set():
                await self.gpu.record(row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)

        await asyncio.gather(super()._poll_kv(stop, row), poll_gpu())


def add_cold_start(results: BenchResults, args: argparse.Namespace, region: str, session: Any = None) -> None:
    """The cold-start table (launch to ready) from the group's activity and the hosts' timelines."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from synapscribe.platform import load_platform

    from synapscribe_ops.bench.coldstart import group_name_from_outputs, metrics_log_group, read_cold_start

    group = args.group_name
    if group is None and args.stack_outputs:
        group = group_name_from_outputs(args.stack_outputs)
    if group is None:
        results.notes.append(
            "cold start not measured: no --group-name (nor AutoScalingGroupName in --stack-outputs)"
        )
        return
    log_group = metrics_log_group(args.stack_outputs, args.env)
    if log_group is None:
        results.notes.append(
            "cold start not measured: no metrics log group (MetricsLogGroupName in --stack-outputs, or --env)"
        )
        return
    fleet = load_platform().fleet
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=args.cold_start_hours)
    try:
        table = read_cold_start(
            session or boto3.Session(region_name=region),
            group,
            log_group,
            since,
            fleet.host_startup_seconds,
        )
    except (BotoCoreError, ClientError) as exc:
        results.notes.append(f"cold start not measured ({group}): {exc}")
        return
    results.tables.append(table)


def write_report(results: BenchResults, out: Path) -> None:
    results.plots = write_plots(results, out)
    (out / "results.json").write_text(json.dumps(results.as_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(results) + "\n", encoding="utf-8")
