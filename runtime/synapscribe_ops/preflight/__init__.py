"""`synapscribe preflight --region R [--env E]`: the deploy traps `cdk synth` cannot see.

`make synth` runs offline, so it cannot know what the target account and region hold. Before
`cdk deploy`, this asks AWS (read-only calls) whether:

- ami: the environment's image channel (platform.yaml `ami.channel_parameter`) names an
  `available` image (the Compute stack's launch template resolves it at each launch: without it
  no GPU instance starts);
- spot-quota: the account's "All G and VT Spot Instance Requests" quota (vCPUs) covers the
  environment's `capacity.max` instances of its largest allowed instance type;
- zones: the zones the Network stack puts subnets in (and so the GPU fleet) exist in the region
  and each offers every one of the environment's instance types that the region offers (zone
  names map to different physical zones in each account, so `<region>a` may not offer g5 in
  yours); it names the zones that do, and the setting that pins them (cdk.json or `-c zones=`);
- bootstrap: the CDK bootstrap stack exists, is usable and is recent enough;
- cors: the environment's `cors_allowed_origins` is not a placeholder (a reserved example name),
  and a production environment (`removal: retain`) names real origins, no `*` and no localhost;
- lambda-concurrency: the account's Lambda concurrency limit leaves AWS's 100 unreserved
  executions after the environment's reserved concurrency (a new account's limit is 10, and
  CloudFormation then fails on the first function that reserves any);
- alarm: someone hears the alarms: the environment's `alarm_email` is set and no placeholder, and
  the deployed alarm topic (the Data stack's `AlarmTopicArn`) has a confirmed subscription (SNS
  lists an unconfirmed one as `PendingConfirmation`). A production environment fails without
  one; until its first deploy the topic does not exist, so this check fails until the mail is
  confirmed after that deploy. Another environment passes with a warning.

Each failed trap sets its own bit of the exit status (listed in `--help`), so a script can tell
which failed; 0 only when every check passed. The bits are 4 and up, so a trap's status is a
multiple of 4 and never reads as 2 (bad flags) or 1 (preflight itself crashed: a bug, with a
traceback and no verdict). An exit status has room for six such bits, so the two account quotas
that Service Quotas raises (spot-quota and lambda-concurrency: same remedy, same lead time) share
the `quotas` bit; their lines tell them apart.

Its parts: `settings` (the environment's settings, read from cdk.json), `checks` (one function
per trap, and the exit bits); this module runs them and is the command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from synapscribe.platform import PlatformConfig, load_platform

from synapscribe_ops.preflight.checks import (
    ALARM_TOPIC_OUTPUT,
    EXIT_BITS,
    EXIT_CRASH,
    EXIT_OK,
    EXIT_USAGE,
    MIN_BOOTSTRAP_VERSION,
    PLACEHOLDER_HOST,
    SPOT_G_VT_QUOTA_CODE,
    TOOLKIT_STACK,
    TRAP_OF,
    UNRESERVED_MINIMUM,
    CheckResult,
    check_alarm,
    check_ami,
    check_bootstrap,
    check_cors,
    check_lambda_concurrency,
    check_spot_quota,
    check_zones,
)
from synapscribe_ops.preflight.settings import (
    ENVIRONMENTS_KEY,
    SWEEPER_RESERVED_CONCURRENCY,
    ZONE_LETTERS,
    DeploySettings,
    SettingsError,
    load_settings,
)

__all__ = [
    "ALARM_TOPIC_OUTPUT",
    "ENVIRONMENTS_KEY",
    "EPILOG",
    "EXIT_BITS",
    "EXIT_CRASH",
    "EXIT_OK",
    "EXIT_USAGE",
    "MIN_BOOTSTRAP_VERSION",
    "PLACEHOLDER_HOST",
    "SPOT_G_VT_QUOTA_CODE",
    "SWEEPER_RESERVED_CONCURRENCY",
    "TOOLKIT_STACK",
    "TRAP_OF",
    "UNRESERVED_MINIMUM",
    "ZONE_LETTERS",
    "CheckResult",
    "DeploySettings",
    "SettingsError",
    "add_arguments",
    "check_alarm",
    "check_ami",
    "check_bootstrap",
    "check_cors",
    "check_lambda_concurrency",
    "check_spot_quota",
    "check_zones",
    "exit_status",
    "load_settings",
    "run",
    "run_checks",
]


def run_checks(
    settings: DeploySettings,
    region: str,
    clients: Mapping[str, Any],
    platform: PlatformConfig | None = None,
    toolkit_stack: str = TOOLKIT_STACK,
    zones: list[str] | None = None,
) -> list[CheckResult]:
    """Every check, in the order an operator fixes them; `clients` maps service name to client."""
    platform = platform or load_platform()
    checks: list[Callable[[], CheckResult]] = [
        lambda: check_ami(clients["ssm"], clients["ec2"], platform, region, settings.name),
        lambda: check_spot_quota(clients["service-quotas"], clients["ec2"], settings, region),
        lambda: check_zones(clients["ec2"], settings, region, zones),
        lambda: check_bootstrap(clients["cloudformation"], region, toolkit_stack),
        lambda: check_cors(settings),
        lambda: check_lambda_concurrency(clients["lambda"], settings),
        lambda: check_alarm(clients["cloudformation"], clients["sns"], settings),
    ]
    return [check() for check in checks]


def exit_status(results: list[CheckResult]) -> int:
    status = EXIT_OK
    for result in results:
        status |= result.exit_bit
    return status


def aws_clients(region: str) -> dict[str, Any]:
    import boto3

    session = boto3.session.Session(region_name=region)
    return {
        s: session.client(s)
        for s in ("sts", "ssm", "ec2", "service-quotas", "cloudformation", "lambda", "sns")
    }


def default_cdk_json() -> Path | None:
    from synapscribe_ops.bench.synth import find_repo

    try:
        return find_repo() / "cdk.json"
    except FileNotFoundError:
        return None


EPILOG = (
    f"exit status: {EXIT_OK} every check passed; {EXIT_CRASH} preflight itself failed (a bug: a "
    f"traceback, no verdict); {EXIT_USAGE} bad flags, cdk.json or no AWS credentials; otherwise the "
    "sum of the failed checks' bits (a multiple of 4): "
    + ", ".join(f"{bit} {name}" for name, bit in EXIT_BITS.items())
    + " (quotas: spot-quota or lambda-concurrency; alarm: production only)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG + " (e.g. 24: no AMI and too small a spot quota)."
    parser.add_argument("--region", required=True, help="the region to deploy to (e.g. eu-west-1)")
    parser.add_argument("--env", help="environment in cdk.json (default: its context `env`, dev)")
    parser.add_argument(
        "--cdk-json", type=Path, help="the CDK app's cdk.json (default: found in the checkout)"
    )
    parser.add_argument(
        "--toolkit-stack-name",
        default=TOOLKIT_STACK,
        help=f"the CDK bootstrap stack (default {TOOLKIT_STACK})",
    )
    parser.add_argument(
        "--zones",
        help="check these zones (e.g. eu-west-1a,eu-west-1b), as `cdk deploy -c zones=` would use, "
        "instead of cdk.json's",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _fail(message: str) -> int:
    print(f"synapscribe preflight: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace, clients: Mapping[str, Any] | None = None) -> int:
    """The command: EXIT_OK, EXIT_USAGE, the failed checks' bits, or EXIT_CRASH on a bug (the
    checks themselves never raise on an AWS error, so anything raised here is one)."""
    try:
        return _run(args, clients)
    except Exception:
        traceback.print_exc()
        print(
            f"synapscribe preflight: crashed (exit {EXIT_CRASH}): a bug in preflight, not a finding "
            "about the account; nothing was checked to the end",
            file=sys.stderr,
        )
        return EXIT_CRASH


def _run(args: argparse.Namespace, clients: Mapping[str, Any] | None) -> int:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", args.region):
        return _fail(f"--region: {args.region!r} is not a region name (e.g. eu-west-1)")
    cdk_json = args.cdk_json or default_cdk_json()
    if cdk_json is None:
        return _fail("--cdk-json: no cdk.json found above the working directory; pass its path")
    try:
        settings = load_settings(cdk_json, args.env)
    except SettingsError as exc:
        return _fail(str(exc))
    zones = None
    if args.zones is not None:
        zones = [z.strip() for z in args.zones.split(",") if z.strip()]
        outside = [z for z in zones if not re.fullmatch(re.escape(args.region) + "[a-z]", z)]
        if len(zones) < 2 or len(set(zones)) != len(zones) or outside:
            return _fail(f"--zones: {args.zones!r} must name two or more distinct zones of {args.region}")
    clients = clients or aws_clients(args.region)
    try:
        # Whose account this is (and whether AWS answers at all) before judging it.
        account = str(clients["sts"].get_caller_identity()["Account"])
    except Exception as exc:
        return _fail(f"cannot ask AWS who you are (credentials?): {exc}")
    results = run_checks(settings, args.region, clients, None, args.toolkit_stack_name, zones)
    status = exit_status(results)
    if args.json:
        doc = {
            "env": settings.name,
            "region": args.region,
            "account": account,
            "exit": status,
            "checks": [{k: v for k, v in r.__dict__.items() if v is not None} for r in results],
        }
        print(json.dumps(doc, indent=2))
    else:
        for r in results:
            print(f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.message}")
        verdict = "ready to deploy" if status == 0 else f"exit {status}"
        print(f"preflight {settings.name} in account {account}, {args.region}: {verdict}")
    return status
