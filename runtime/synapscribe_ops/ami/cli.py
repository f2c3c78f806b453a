"""`synapscribe ami bake|verify|promote|rollout|rollback|prune`: the image pipeline's steps.

The weekly CodeBuild project (cdk: SynapScribe-ImagePipeline) runs them in order; a person runs
any one the same way. Each step records what it did on the image (tags) and does nothing the
second time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synapscribe.cli_types import positive_int
from synapscribe.image_names import STACK_PREFIX
from synapscribe.platform import load_platform

from synapscribe_ops.ami import verify as verify_step
from synapscribe_ops.ami.errors import DESCRIPTIONS, Exit, PipelineError

ENVIRONMENTS_KEY = "synapscribe:environments"
#: The CDK app names each environment's stacks SynapScribe-<env>-<part> (cdk/synapscribe_cdk/application.py).
#: The stacks whose outputs `rollout` reads.
STACK_PARTS = ("Api", "Identity", "Compute")
GROUP_OUTPUT = "AutoScalingGroupName"
ALARMS_OUTPUT = "FleetAlarmNames"

EPILOG = "exit status: " + "; ".join(f"{int(code)} {text}" for code, text in DESCRIPTIONS.items()) + "."


def environments(repo: Path) -> list[str]:
    """cdk.json's environments, in the order images move through them (dev, then prod)."""
    context = json.loads((repo / "cdk.json").read_text(encoding="utf-8"))["context"]
    return list(context[ENVIRONMENTS_KEY])


def fleet_first_type(repo: Path, environment: str) -> str:
    context = json.loads((repo / "cdk.json").read_text(encoding="utf-8"))["context"]
    return str(context[ENVIRONMENTS_KEY][environment]["instance_types"][0])


def default_repo() -> Path:
    """The checkout: the current directory when it holds cdk.json (where operators and CodeBuild
    run), else the one this package is installed from in development mode."""
    here = Path.cwd()
    if (here / "cdk.json").exists():
        return here
    source = Path(__file__).resolve().parents[3]
    return source if (source / "cdk.json").exists() else here


def known_environments() -> list[str]:
    """cdk.json's environments for the rollout and rollback subcommands (none without cdk.json)."""
    try:
        return environments(default_repo())
    except (OSError, ValueError, KeyError):
        return []


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.epilog = EPILOG
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION"), help="AWS region (default: AWS_REGION)"
    )
    parser.add_argument(
        "--repo", type=Path, default=default_repo(), help="the checkout (default: the current directory)"
    )
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)

    bake = _common(steps.add_parser("bake", help="Packer build (scripts/bake-ami); tags the image baked"))
    bake.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a Packer variable")

    verify = _common(
        steps.add_parser(
            "verify", help="one spot instance from the image: readiness, host tests, canned question"
        )
    )
    verify.add_argument("--image", help="image id (default: the newest baked image not yet verified)")
    verify.add_argument(
        "--subnet-id", required=True, help="a private subnet (ImagePipeline output VerifySubnetId)"
    )
    verify.add_argument(
        "--security-group-id", required=True, help="no inbound rules (output VerifySecurityGroupId)"
    )
    verify.add_argument(
        "--instance-profile", required=True, help="its instance profile (output VerifyInstanceProfile)"
    )
    verify.add_argument(
        "--instance-type", help="default: the first instance type of cdk.json's first environment"
    )
    verify.add_argument(
        "--canned", type=Path, help=f"canned lecture and question (default: {verify_step.CANNED_DIR})"
    )
    verify.add_argument(
        "--ready-timeout", type=positive_int, default=1800, help="seconds to wait for readiness"
    )

    promote = _common(steps.add_parser("promote", help="point an environment's channel at an image"))
    promote.add_argument("--to", required=True, dest="environment", help="the environment (dev, then prod)")
    promote.add_argument(
        "--image", help="default: the newest verified image (dev), the channel before (others)"
    )

    # `rollout dev`, `rollback prod`: one subcommand per environment of cdk.json, so each flag
    # belongs to the command that ends the line.
    for name, text in (
        ("rollout", "instance refresh of the environment's fleet to its channel's image, smoke test last"),
        ("rollback", "put the channel's previous image back and refresh"),
    ):
        step = steps.add_parser(name, help=text, epilog=EPILOG)
        targets = step.add_subparsers(dest="environment", metavar="ENV", required=True)
        for environment in known_environments():
            target = _common(targets.add_parser(environment, help=f"{name} {environment}"))
            target.add_argument("--min-healthy-percentage", type=positive_int, default=50)
            target.add_argument(
                "--checkpoint-delay", type=positive_int, default=600, help="seconds at each checkpoint"
            )
    prune = _common(steps.add_parser("prune", help="deregister images beyond the newest per channel"))
    prune.add_argument("--keep", type=positive_int, default=3, help="images kept per channel (default 3)")
    prune.add_argument("--dry-run", action="store_true", help="list, delete nothing")


def _clients(region: str | None) -> Callable[[str], Any]:
    import boto3

    session = boto3.session.Session(region_name=region)

    def client(service: str) -> Any:
        return session.client(service)

    return client


def stack_outputs(cfn: Any, environment: str) -> dict[str, str]:
    """The outputs the smoke test and the rollout read: the WebSocket URL (Api), the guest
    identity (Identity), the group and its alarms (Compute). By name: the pipeline's role may
    describe only the environments' stacks."""
    outputs: dict[str, str] = {}
    for part in STACK_PARTS:
        name = STACK_PREFIX.format(env=environment) + part
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except cfn.exceptions.ClientError as exc:
            raise PipelineError(Exit.AWS, f"cannot read stack {name}: {exc} (deployed?)") from exc
        for stack in stacks:
            outputs.update({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
    return outputs


def smoke_runner(outputs: dict[str, str]) -> Callable[[], bool]:
    """The existing smoke test (`synapscribe smoke --stack-outputs`) against the environment."""

    def run() -> bool:
        from synapscribe import cli

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(outputs, f)
        try:
            return cli.main(["smoke", "--stack-outputs", f.name]) == 0
        finally:
            os.unlink(f.name)

    return run


def _rollout(args: argparse.Namespace, client: Callable[[str], Any], rollback_first: bool) -> int:
    from synapscribe_ops.ami import promote, rollout

    platform = load_platform()
    outputs = stack_outputs(client("cloudformation"), args.environment)
    if GROUP_OUTPUT not in outputs:
        raise PipelineError(Exit.AWS, f"no {GROUP_OUTPUT} output in the {args.environment} stacks: deployed?")
    if rollback_first:
        before = promote.rollback(client("ec2"), client("ssm"), platform, args.environment)
        print(f"rollback {args.environment}: {before.current} -> {before.previous}")
    step = rollout.Rollout(
        autoscaling=client("autoscaling"),
        ec2=client("ec2"),
        ssm=client("ssm"),
        platform=platform,
        environment=args.environment,
        group_name=outputs[GROUP_OUTPUT],
        alarm_names=[a for a in outputs.get(ALARMS_OUTPUT, "").split(",") if a],
        smoke=smoke_runner(outputs),
        refresh=rollout.Refresh(
            min_healthy_percentage=args.min_healthy_percentage, checkpoint_delay_seconds=args.checkpoint_delay
        ),
    )
    if rollback_first:
        problem = step.replace(str(before.previous))
        if problem:
            raise PipelineError(Exit.ROLLBACK_FAILED, problem)
        return Exit.OK
    print(f"rollout {args.environment}: {step.run()} is out")
    return Exit.OK


def _verify(args: argparse.Namespace, client: Callable[[str], Any]) -> int:
    from synapscribe import image_names as tags

    from synapscribe_ops.ami import images

    platform = load_platform()
    ec2 = client("ec2")
    image_id = args.image
    if image_id is None:
        # A failed image is not tried again by default (`--image` does that).
        done = (tags.VERIFIED, tags.VERIFY_FAILED)
        waiting = [
            i
            for i in images.project_images(ec2)
            if tags.BAKED in i.tags and not any(d in i.tags for d in done)
        ]
        if not waiting:
            print("verify: no baked image waiting to be verified")
            return Exit.OK
        image_id = waiting[0].id
    first = environments(args.repo)[0]
    verifier = verify_step.Verifier(
        ec2=ec2,
        ssm=client("ssm"),
        platform=platform,
        region=args.region,
        target=verify_step.Target(
            instance_type=args.instance_type or fleet_first_type(args.repo, first),
            subnet_id=args.subnet_id,
            security_group_id=args.security_group_id,
            instance_profile=args.instance_profile,
        ),
        canned=verify_step.Canned.load(args.canned or args.repo / verify_step.CANNED_DIR),
        timeline=verify_step.timeline_file(args.repo),
        run_host_tests=verify_step.host_tests(args.repo),
        ready_timeout=args.ready_timeout,
    )
    result = verifier.verify(image_id)
    seconds = (
        "not measured" if result.launch_to_ready_seconds is None else f"{result.launch_to_ready_seconds:g} s"
    )
    print(
        f"verify: {image_id} {'was already verified' if result.already else 'verified'}; launch to ready "
        f"{seconds} (fleet.host_startup_seconds {platform.fleet.host_startup_seconds} s)"
    )
    return Exit.OK


def _step(args: argparse.Namespace, client: Callable[[str], Any]) -> int:
    from synapscribe_ops.ami import bake, promote, prune

    platform = load_platform()
    if args.step == "bake":
        image_id = bake.bake(client("ec2"), repo=args.repo, region=args.region, packer_vars=args.var)
        print(f"bake: {image_id} (tagged baked)")
        return Exit.OK
    if args.step == "verify":
        return _verify(args, client)
    if args.step == "promote":
        envs = environments(args.repo)
        image_id, before = promote.promote(
            client("ec2"), client("ssm"), platform, envs, args.environment, args.image
        )
        print(f"promote: {args.environment} {before.current or 'none'} -> {image_id}")
        return Exit.OK
    if args.step in ("rollout", "rollback"):
        return _rollout(args, client, rollback_first=args.step == "rollback")
    pruned, in_use = prune.prune(
        client("ec2"), client("ssm"), platform, environments(args.repo), args.keep, args.dry_run
    )
    verb = "would deregister" if args.dry_run else "deregistered"
    for p in pruned:
        print(f"prune: {verb} {p.image_id} and {len(p.snapshots)} snapshot(s)")
    print(f"prune: {len(pruned)} image(s); in use, kept: {', '.join(sorted(in_use)) or 'none'}")
    return Exit.OK


def run(args: argparse.Namespace, client: Callable[[str], Any] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    if not args.region:
        print("synapscribe ami: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return Exit.USAGE
    try:
        return _step(args, client or _clients(args.region))
    except PipelineError as exc:
        print(f"synapscribe ami {args.step}: {exc}", file=sys.stderr)
        return exc.exit
    except (ClientError, BotoCoreError) as exc:
        print(f"synapscribe ami {args.step}: AWS: {exc}", file=sys.stderr)
        return Exit.AWS
