"""`synapscribe standin`: serve the model stand-in on loopback (vLLM's API, limits and metrics).

Latency flags override their environment variables; both default to zero (answer at once).
`--report-latencies` takes the original report's figures (transcription 1.8 s, first token 0.4 s,
40 tokens/s, 170-token answers) for the benchmark.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from synapscribe.cli_types import non_empty, non_negative_float, port, positive_int
from synapscribe.platform import PlatformConfigError, load_platform

from synapscribe_local.standin.config import REPORT_LATENCY, Latency, StandinConfig

#: flag destination -> (environment variable, type)
ENV_LATENCY: dict[str, tuple[str, type]] = {
    "transcription_seconds": ("SYNAPSCRIBE_STANDIN_TRANSCRIPTION_SECONDS", float),
    "first_token_seconds": ("SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS", float),
    "tokens_per_second": ("SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND", float),
    "answer_tokens": ("SYNAPSCRIBE_STANDIN_ANSWER_TOKENS", int),
}

TRANSCRIPTION_MAX_TOKENS_ENV = "SYNAPSCRIBE_STANDIN_TRANSCRIPTION_MAX_TOKENS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = load_platform()
    r = REPORT_LATENCY
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=p.ports.vllm, help="port (default ports.vllm)")
    parser.add_argument(
        "--max-model-len",
        type=positive_int,
        default=p.vllm.max_model_len,
        help="context length, like vLLM's flag (default vllm.max_model_len)",
    )
    parser.add_argument(
        "--max-num-seqs",
        type=positive_int,
        default=p.vllm.max_num_seqs,
        help="requests running at once; the rest wait (default vllm.max_num_seqs)",
    )
    parser.add_argument(
        "--served-model-name",
        type=non_empty,
        default=p.model.served_name,
        help="the model name clients must send (default model.served_name)",
    )
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=16,
        help="KV cache block size: prefix cache hits come in whole blocks, like vLLM's flag (default 16, "
        "vLLM's on GPUs; its CPU build uses 128)",
    )
    parser.add_argument(
        "--enable-prompt-tokens-details",
        action="store_true",
        help="report usage.prompt_tokens_details.cached_tokens (prefix cache hits), like vLLM's flag",
    )
    parser.add_argument(
        "--transcription-max-tokens",
        type=positive_int,
        default=None,
        help=(
            "test option: cut every transcription after this many tokens (finish_reason length) "
            f"whatever max_tokens allows [{TRANSCRIPTION_MAX_TOKENS_ENV}]"
        ),
    )
    parser.add_argument("--api-key", default=None, help="require this bearer key on /v1/* (like vLLM)")
    parser.add_argument(
        "--report-latencies",
        action="store_true",
        help=(
            f"start from the original report's latencies ({r.transcription_seconds} s transcription, "
            f"first token {r.first_token_seconds} s, {r.tokens_per_second:g} tokens/s, {r.answer_tokens} tokens)"
        ),
    )
    latency = parser.add_argument_group("latency model (flags override the environment; default 0)")
    latency.add_argument(
        "--transcription-seconds",
        type=non_negative_float,
        help="duration of a transcription request [SYNAPSCRIBE_STANDIN_TRANSCRIPTION_SECONDS]",
    )
    latency.add_argument(
        "--first-token-seconds",
        type=non_negative_float,
        help="time to an answer's first token [SYNAPSCRIBE_STANDIN_FIRST_TOKEN_SECONDS]",
    )
    latency.add_argument(
        "--tokens-per-second",
        type=non_negative_float,
        help="answer decode rate, 0 = no delay [SYNAPSCRIBE_STANDIN_TOKENS_PER_SECOND]",
    )
    latency.add_argument(
        "--answer-tokens",
        type=positive_int,
        help="answer length before max_tokens, default 170 [SYNAPSCRIBE_STANDIN_ANSWER_TOKENS]",
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


class LatencyEnvError(ValueError):
    pass


def resolve_transcription_max_tokens(
    args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]
) -> int | None:
    """The flag over the environment; None (no forced cut) by default."""
    flag = getattr(args, "transcription_max_tokens", None)
    if flag is not None:
        return int(flag)
    raw = environ.get(TRANSCRIPTION_MAX_TOKENS_ENV)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise LatencyEnvError(f"{TRANSCRIPTION_MAX_TOKENS_ENV}: not a valid int: {raw!r}") from None
    if value < 1:
        raise LatencyEnvError(f"{TRANSCRIPTION_MAX_TOKENS_ENV}: out of range: {raw!r}")
    return value


def resolve_latency(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> Latency:
    """Flags over environment over defaults (or the report's figures with --report-latencies)."""
    base = REPORT_LATENCY if getattr(args, "report_latencies", False) else Latency()
    values: dict[str, float | int] = {name: getattr(base, name) for name in ENV_LATENCY}
    for name, (variable, kind) in ENV_LATENCY.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise LatencyEnvError(f"{variable}: not a valid {kind.__name__}: {raw!r}") from None
        if (kind is float and (not math.isfinite(value) or value < 0)) or (kind is int and value < 1):
            raise LatencyEnvError(f"{variable}: out of range: {raw!r}")
        values[name] = value
    for name in ENV_LATENCY:
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            values[name] = flag_value
    return Latency(
        transcription_seconds=float(values["transcription_seconds"]),
        first_token_seconds=float(values["first_token_seconds"]),
        tokens_per_second=float(values["tokens_per_second"]),
        answer_tokens=int(values["answer_tokens"]),
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from synapscribe_local.standin.server import create_app

    try:
        latency = resolve_latency(args, os.environ)
        transcription_max_tokens = resolve_transcription_max_tokens(args, os.environ)
    except LatencyEnvError as exc:
        print(f"synapscribe standin: {exc}", file=sys.stderr)
        return 2
    try:
        config = StandinConfig.from_platform(max_model_len=args.max_model_len)
    except PlatformConfigError as exc:
        print(f"synapscribe standin: --max-model-len {args.max_model_len}: {exc}", file=sys.stderr)
        return 2
    config = dataclasses.replace(
        config,
        served_name=args.served_model_name,
        max_num_seqs=args.max_num_seqs,
        block_size=args.block_size,
        latency=latency,
        prompt_tokens_details=args.enable_prompt_tokens_details,
        transcription_max_tokens=transcription_max_tokens,
    )
    app = create_app(config, api_key=args.api_key)
    print(
        f"stand-in serving {config.served_name} on http://{args.host}:{args.port}/v1 "
        f"(max_model_len {config.max_model_len}, max_num_seqs {config.max_num_seqs}, latency {latency})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return 0
