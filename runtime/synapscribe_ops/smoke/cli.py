"""`synapscribe smoke`: the post-deploy smoke test, against a local or a deployed stack.

Local: `synapscribe smoke --url ws://127.0.0.1:PORT [--identity ID] [--expect-standin]`; against a
model whose words mean nothing (random weights) add `--model-words meaningless`.
Deployed: `synapscribe smoke --stack-outputs outputs.json` (from `cdk deploy --outputs-file`) or
`--url wss://… --region R --identity-pool-id POOL --guest-role-arn ARN`; `$connect` is signed with
the guest role's credentials (Cognito's basic flow, see `synapscribe_ops.smoke.aws_auth`).
Exit status 0 when every check passed, 1 when any failed (the summary lists them), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from synapscribe.cli_types import positive_float
from synapscribe.platform import load_platform

from synapscribe_ops.smoke.checks import Budget
from synapscribe_ops.smoke.inputs import MEANINGFUL, MEANINGLESS, MODEL_WORDS, VOICE_QUESTION, SmokeInputs
from synapscribe_ops.smoke.report import SmokeReport, format_report
from synapscribe_ops.smoke.runner import deployed_connector, local_connector, run_smoke

if TYPE_CHECKING:
    from synapscribe_ops.smoke.aws_auth import GuestAccess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="WebSocket URL: ws://127.0.0.1:PORT (local) or wss://… (deployed)")
    parser.add_argument("--identity", help="local stack: the identity to connect as (default: a fresh one)")
    parser.add_argument(
        "--lecture", type=Path, help="audio file to upload (default: a generated 1-minute lecture)"
    )
    parser.add_argument("--lecture-content-type", help="its content type (default: from the file name)")
    parser.add_argument("--json", dest="json_report", type=Path, help="write a machine-readable report here")
    parser.add_argument("--stack-outputs", type=Path, help="deployed: `cdk deploy --outputs-file` JSON")
    parser.add_argument("--region", help="deployed: the stack's region")
    parser.add_argument("--identity-pool-id", help="deployed: the Cognito identity pool")
    parser.add_argument(
        "--guest-role-arn", help="deployed: the pool's guest role (Identity stack output GuestRoleArn)"
    )
    budget = Budget()
    parser.add_argument(
        "--max-connect-ms",
        type=positive_float,
        default=budget.connect_ms,
        help="budget: opening the connection",
    )
    parser.add_argument(
        "--max-ready-seconds",
        type=positive_float,
        default=budget.lecture_ready_s,
        help="budget: upload to `ready`",
    )
    parser.add_argument(
        "--max-first-token-ms",
        type=positive_float,
        default=budget.first_delta_ms,
        help="budget: first answerDelta",
    )
    parser.add_argument(
        "--max-first-audio-ms", type=positive_float, default=budget.first_audio_ms, help="budget: first audio"
    )
    parser.add_argument(
        "--max-answer-ms", type=positive_float, default=budget.answer_ms, help="budget: the whole answer"
    )
    parser.add_argument(
        "--expect-standin",
        action="store_true",
        help="the stack runs the model stand-in (the local stack without VLLM_BASE_URL): require its "
        "[stand-in] label on every answer and transcript, and its way of showing the history",
    )
    parser.add_argument(
        "--model-words",
        choices=MODEL_WORDS,
        default=MEANINGFUL,
        help="meaningless: the model's words mean nothing (a model with random weights, as the engine "
        "tests run): contract, order, timing and audio checks hold; the checks of what the answers say "
        "are skipped and the report lists them (default: meaningful)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def _fail(parser_error: str) -> int:
    print(f"synapscribe smoke: error: {parser_error}", file=sys.stderr)
    return 2


def _content_type(path: Path, given: str | None) -> str | None:
    if given:
        return given
    guessed = mimetypes.guess_type(path.name)[0]
    accepted = load_platform().limits.accepted_content_types
    if guessed in accepted:
        return guessed
    by_ext = {ext: ctype for ctype, ext in reversed(list(accepted.items()))}
    return by_ext.get(path.suffix.lower().lstrip("."))


def budget_from_args(args: argparse.Namespace) -> Budget:
    return Budget(
        connect_ms=args.max_connect_ms,
        lecture_ready_s=args.max_ready_seconds,
        first_delta_ms=args.max_first_token_ms,
        first_audio_ms=args.max_first_audio_ms,
        answer_ms=args.max_answer_ms,
    )


def make_inputs(
    workdir: Path,
    budget: Budget,
    lecture: Path | None = None,
    content_type: str | None = None,
    lecture_minutes: float = 1.0,
    expect_standin: bool = False,
    model_words: str = MEANINGFUL,
) -> SmokeInputs:
    """The lecture (given, or generated and cached) and the spoken question."""
    from synapscribe_local import audiogen

    path = lecture or audiogen.cached_lecture(lecture_minutes)
    question = audiogen.speak(VOICE_QUESTION, workdir / "question.mp3")
    return SmokeInputs(
        lecture=path,
        lecture_content_type=_content_type(path, content_type) or "audio/mpeg",
        voice_question=question.path.read_bytes(),
        budget=budget,
        expect_standin=expect_standin,
        model_words=model_words,
    )


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
    scheme = urlsplit(url).scheme
    if scheme not in ("ws", "wss"):
        return _fail(f"--url must be ws:// or wss://, not {url!r}")
    if args.lecture is not None and not args.lecture.is_file():
        return _fail(f"--lecture: no such file: {args.lecture}")
    if access and args.identity:
        return _fail("--identity is for the local stack; a deployed stack's identity comes from Cognito")
    if args.expect_standin and args.model_words == MEANINGLESS:
        return _fail(
            "--expect-standin and --model-words meaningless do not go together: the stand-in's words mean something"
        )

    from synapscribe_local.audiogen import AudioGenError

    try:
        report = run_from_args(args, url, access)
    except AudioGenError as exc:
        print(f"synapscribe smoke: cannot generate the sample audio: {exc}", file=sys.stderr)
        return 1
    text = format_report(report, verbose=not args.quiet)
    print(text)
    if args.json_report:
        args.json_report.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


def run_from_args(args: argparse.Namespace, url: str, access: GuestAccess | None) -> SmokeReport:
    with tempfile.TemporaryDirectory(prefix="synapscribe-smoke-") as tmp:
        inputs = make_inputs(
            Path(tmp),
            budget_from_args(args),
            args.lecture,
            args.lecture_content_type,
            expect_standin=args.expect_standin,
            model_words=args.model_words,
        )
        if access:
            return asyncio.run(run_smoke(url, "deployed", deployed_connector(url, access), inputs))
        return asyncio.run(run_smoke(url, "local", local_connector(url, args.identity), inputs))
