"""The image pipeline on moto: bake (Packer mocked at its command line), verify on a spot
instance (SSM Run Command scripted with botocore's Stubber), promotion in order, a rollout whose
alarm fires and rolls back (instance refresh scripted with Stubber), and prune keeping what is
in use."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from synapscribe import image_names as tags
from synapscribe.platform import load_platform
from synapscribe_ops.ami import bake, channels, promote, prune
from synapscribe_ops.ami import cli as ami_cli
from synapscribe_ops.ami.errors import Exit, PipelineError
from synapscribe_ops.ami.rollout import Refresh, Rollout
from synapscribe_ops.ami.verify import Canned, Target, Verifier, answer_problems

from .ami_support import REGION, HostScript, image_tags, register_image, timeline, verify_network

ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENTS = ["dev", "prod"]
CANNED = Canned.load(ROOT / "tests" / "host" / "canned")
GOOD_ANSWER = {"transcript": CANNED.question_text, "answer": "The lecture calls it photosynthesis."}
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# What Packer does, at its command line: a build writes ami/manifest.json naming the image (which
# the test registered in moto, as Packer's amazon plugin registers it in EC2) and the model commit.
FAKE_PACKER = r"""#!/usr/bin/env bash
echo "packer $*" >> "$FAKE_LOG"
case $1 in
  version) echo "Packer v1.11.2" ;;
  plugins) printf 'github.com/hashicorp/amazon_v1.3.9\ngithub.com/hashicorp/ansible_v1.1.2\n' ;;
  build)
    echo "$FAKE_COMMIT" > ami/model-revision.txt
    printf '{"builds": [{"packer_run_uuid": "r", "artifact_id": "eu-west-1:%s"}], "last_run_uuid": "r"}' \
      "$FAKE_AMI" > ami/manifest.json
    ;;
esac
"""


class Clock:
    """time.monotonic and time.sleep for the steps' waits: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def account(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            "ec2": boto3.client("ec2", region_name=REGION),
            "ssm": boto3.client("ssm", region_name=REGION),
            "iam": boto3.client("iam", region_name=REGION),
        }


def commands_client() -> Any:
    """The SSM client the verify step sends commands with (scripted by a Stubber)."""
    return boto3.client("ssm", region_name=REGION)


# ---------------------------------------------------------------------------------------------
# bake


def test_two_images_baked_through_packers_command_line(
    account: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = account["ec2"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    packer = bin_dir / "packer"
    packer.write_text(FAKE_PACKER)
    packer.chmod(packer.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VENV", str(Path(sys.executable).parent.parent))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_COMMIT", COMMIT)
    baked = []
    try:
        for n in (1, 2):
            image = register_image(ec2, f"synapscribe-gpu-{n}")
            monkeypatch.setenv("FAKE_AMI", image)
            baked.append(bake.bake(ec2, repo=ROOT, region=REGION, packer_vars=["max_model_len=16384"]))
            assert baked[-1] == image
    finally:
        (ROOT / "ami" / "manifest.json").unlink(missing_ok=True)
        (ROOT / "ami" / "model-revision.txt").unlink(missing_ok=True)
    for image in baked:
        found = image_tags(ec2, image)
        assert tags.BAKED in found and found[tags.MODEL_COMMIT] == COMMIT
        assert not any(k.startswith(tags.PREFIX + "promoted") for k in found), "a bake publishes nothing"
    builds = [c for c in (tmp_path / "calls.log").read_text().splitlines() if c.startswith("packer build")]
    assert len(builds) == 2 and all("-var max_model_len=16384" in b for b in builds)
    assert account["ssm"].describe_parameters()["Parameters"] == []


def test_a_failed_packer_build_is_exit_5(account: dict[str, Any]) -> None:
    def failing(argv: list[str], **kwargs: Any) -> Any:
        import subprocess

        return subprocess.CompletedProcess(argv, 1, stdout="")

    with pytest.raises(PipelineError) as caught:
        bake.bake(account["ec2"], repo=ROOT, region=REGION, run=failing)
    assert caught.value.exit == Exit.BAKE_FAILED


# ---------------------------------------------------------------------------------------------
# verify


def verifier(account: dict[str, Any], commands: Any, host_tests_exit: int = 0) -> tuple[Verifier, list[str]]:
    network = verify_network(account["ec2"], account["iam"])
    tested: list[str] = []

    def host_tests(instance_id: str) -> int:
        tested.append(instance_id)
        return host_tests_exit

    clock = Clock()
    step = Verifier(
        ec2=account["ec2"],
        ssm=commands,
        platform=load_platform(),
        region=REGION,
        target=Target("g5.2xlarge", network["subnet"], network["group"], network["profile"]),
        canned=CANNED,
        timeline="/run/synapscribe-startup/timeline.json",
        run_host_tests=host_tests,
        ready_timeout=600,
        poll_seconds=30,
        sleep=clock.sleep,
        clock=clock,
    )
    return step, tested


def verify_instances(ec2: Any) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(
        Filters=[{"Name": f"tag:{tags.PURPOSE}", "Values": [tags.VERIFY_PURPOSE]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_verify_passes_and_records_launch_to_ready(account: dict[str, Any]) -> None:
    ec2 = account["ec2"]
    image = register_image(ec2, "synapscribe-gpu-1", {tags.BAKED: "2026-12-07T03:00:00Z"})
    commands = commands_client()
    step, tested = verifier(account, commands)
    with Stubber(commands) as stub:
        host = HostScript(stub)
        host.unreachable()  # the SSM agent has not registered yet
        host.command(75)  # registered; the timeline is not written yet
        host.command(0, out=timeline(412.5))
        host.command(0, out=json.dumps(GOOD_ANSWER))
        result = step.verify(image)
        stub.assert_no_pending_responses()
    assert result.launch_to_ready_seconds == 412.5
    found = image_tags(ec2, image)
    assert tags.VERIFIED in found and found[tags.LAUNCH_TO_READY] == "412.5"
    (instance,) = verify_instances(ec2)
    assert tested == [instance["InstanceId"]]
    assert instance["State"]["Name"] in ("shutting-down", "terminated")
    # Spot, the fleet's first type, private subnet, no key pair, IMDSv2 required.
    assert instance["InstanceLifecycle"] == "spot" and instance["InstanceType"] == "g5.2xlarge"
    assert instance["MetadataOptions"]["HttpTokens"] == "required" and "KeyName" not in instance
    # Idempotent: a second run launches nothing.
    assert step.verify(image).already
    assert len(verify_instances(ec2)) == 1


@pytest.mark.parametrize("failure", ["never_ready", "missing_step", "host_test", "wrong_answer", "bad_words"])
def test_verify_failures_stop_and_terminate(account: dict[str, Any], failure: str) -> None:
    ec2 = account["ec2"]
    image = register_image(ec2, "synapscribe-gpu-1", {tags.BAKED: "2026-12-07T03:00:00Z"})
    commands = commands_client()
    step, tested = verifier(account, commands, host_tests_exit=1 if failure == "host_test" else 0)
    with Stubber(commands) as stub:
        host = HostScript(stub)
        if failure == "never_ready":
            # Each try: one 30 s poll of the command's status and a 30 s wait, for 600 s, then
            # once more at the deadline.
            for _ in range(11):
                host.command(75)
        elif failure == "missing_step":
            host.command(0, out=timeline(None, missing=["vllm:model_listed", "agentcore:ready"]))
        else:
            host.command(0, out=timeline())
        if failure == "wrong_answer":
            host.command(0, out=json.dumps({**GOOD_ANSWER, "answer": "Plants are green."}))
        if failure == "bad_words":
            host.command(0, out=json.dumps({**GOOD_ANSWER, "transcript": "what is the weather today"}))
        with pytest.raises(PipelineError) as caught:
            step.verify(image)
        stub.assert_no_pending_responses()
    assert caught.value.exit == Exit.VERIFY_FAILED
    expected = {
        "never_ready": "never became ready within 600 s",
        "missing_step": "not seen vllm:model_listed, agentcore:ready",
        "host_test": "host tests failed",
        "wrong_answer": "does not name 'photosynthesis'",
        "bad_words": "transcript word accuracy",
    }[failure]
    assert expected in str(caught.value)
    (instance,) = verify_instances(ec2)
    assert instance["State"]["Name"] in ("shutting-down", "terminated")
    found = image_tags(ec2, image)
    assert tags.VERIFIED not in found and expected in found[tags.VERIFY_FAILED]
    if failure in ("never_ready", "missing_step"):
        assert tested == [], "the host tests never ran on a host that was not ready"
    # The failed image cannot enter dev.
    with pytest.raises(PipelineError) as refused:
        promote.promote(ec2, account["ssm"], load_platform(), ENVIRONMENTS, "dev", image)
    assert refused.value.exit == Exit.REFUSED


def test_an_unbaked_image_is_not_verified(account: dict[str, Any]) -> None:
    image = register_image(account["ec2"], "hand-made")
    step, _ = verifier(account, commands_client())
    with pytest.raises(PipelineError, match="not tagged synapscribe:baked"):
        step.verify(image)
    assert verify_instances(account["ec2"]) == []


def test_answer_checks_are_what_the_guide_says() -> None:
    assert answer_problems(CANNED, GOOD_ANSWER["transcript"], GOOD_ANSWER["answer"]) == []
    one_word_off = CANNED.question_text.replace("glucose", "close")
    assert answer_problems(CANNED, one_word_off, "photosynthesis") == []  # 12 of 13 words: 92 %
    two_off = one_word_off.replace("sunlight", "moonlight")
    assert answer_problems(CANNED, two_off, "photosynthesis")


# ---------------------------------------------------------------------------------------------
# promote


def test_promotion_is_refused_out_of_order_and_keeps_the_previous_id(account: dict[str, Any]) -> None:
    ec2, ssm, platform = account["ec2"], account["ssm"], load_platform()
    old = register_image(ec2, "old", {tags.VERIFIED: "t"})
    new = register_image(ec2, "new", {tags.BAKED: "t"})
    dev, prod = platform.ami.channel("dev"), platform.ami.channel("prod")
    promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", old)
    # Not verified: not into dev. Not rolled out in dev: not into prod.
    for environment in ("dev", "prod"):
        with pytest.raises(PipelineError) as caught:
            promote.promote(ec2, ssm, platform, ENVIRONMENTS, environment, new)
        assert caught.value.exit == Exit.REFUSED
    tags.put(ec2, new, {tags.VERIFIED: "t"})
    with pytest.raises(PipelineError, match="must pass `synapscribe ami rollout dev`"):
        promote.promote(ec2, ssm, platform, ENVIRONMENTS, "prod", new)
    assert channels.state(ssm, prod) == channels.ChannelState(None, None)
    promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", new)
    assert channels.state(ssm, dev) == channels.ChannelState(new, old)
    promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", new)  # again: nothing changes
    assert channels.state(ssm, dev) == channels.ChannelState(new, old)
    tags.put(ec2, new, {tags.rolled_out("dev"): "t"})
    image, _ = promote.promote(ec2, ssm, platform, ENVIRONMENTS, "prod")  # dev's image by default
    assert image == new and channels.state(ssm, prod) == channels.ChannelState(new, None)
    assert tags.promoted("prod") in image_tags(ec2, new)


def test_cli_exit_statuses(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = account["ec2"]
    image = register_image(ec2, "new", {tags.BAKED: "t"})
    parser, _ = ami_cli_parser()
    clients = {
        "ec2": ec2,
        "ssm": account["ssm"],
        "cloudformation": boto3.client("cloudformation", region_name=REGION),
    }
    args = parser.parse_args(["ami", "promote", "--to", "prod", "--image", image, "--region", REGION])
    assert ami_cli.run(args, clients.__getitem__) == Exit.REFUSED
    assert "must pass `synapscribe ami rollout dev`" in capsys.readouterr().err
    args = parser.parse_args(["ami", "rollback", "dev", "--region", REGION])
    assert ami_cli.run(args, clients.__getitem__) == Exit.AWS  # no stacks of dev: "deployed?"
    args = parser.parse_args(["ami", "promote", "--to", "dev", "--region", REGION])
    assert ami_cli.run(args, clients.__getitem__) == Exit.REFUSED  # no verified image yet


def ami_cli_parser() -> Any:
    from synapscribe.cli import command_parser

    return command_parser("ami")


# ---------------------------------------------------------------------------------------------
# rollout


def fleet(ec2: Any, image: str, count: int = 2) -> list[str]:
    reservation = ec2.run_instances(ImageId=image, InstanceType="g5.2xlarge", MinCount=count, MaxCount=count)
    return [i["InstanceId"] for i in reservation["Instances"]]


GROUP = "SynapScribe-dev-gpu-fleet"
ALARMS = ["SynapScribe-dev-Compute-AgentCore5xx", "SynapScribe-dev-Compute-NoHealthyHosts"]


def expect_refresh(
    stub: Stubber, instances: list[str], refresh_id: str, statuses: list[tuple[str, str]]
) -> None:
    expect_group(stub, instances)
    stub.add_response(
        "start_instance_refresh",
        {"InstanceRefreshId": refresh_id},
        {
            "AutoScalingGroupName": GROUP,
            "Strategy": "Rolling",
            "Preferences": {
                "MinHealthyPercentage": 50,
                "CheckpointPercentages": [50, 100],
                "CheckpointDelay": 600,
                "SkipMatching": False,
                "AutoRollback": False,
                "AlarmSpecification": {"Alarms": ALARMS},
                "ScaleInProtectedInstances": "Wait",
                "StandbyInstances": "Wait",
            },
        },
    )
    for status, reason in statuses:
        stub.add_response(
            "describe_instance_refreshes",
            {
                "InstanceRefreshes": [
                    {
                        "InstanceRefreshId": refresh_id,
                        "Status": status,
                        **({"StatusReason": reason} if reason else {}),
                    }
                ]
            },
            {"AutoScalingGroupName": GROUP, "InstanceRefreshIds": [refresh_id]},
        )


def expect_group(stub: Stubber, instances: list[str]) -> None:
    stub.add_response(
        "describe_auto_scaling_groups",
        {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": GROUP,
                    "MinSize": 0,
                    "MaxSize": 2,
                    "DesiredCapacity": len(instances),
                    "DefaultCooldown": 300,
                    "AvailabilityZones": [f"{REGION}a"],
                    "HealthCheckType": "ELB",
                    "CreatedTime": "2026-12-01T00:00:00Z",
                    "Instances": [
                        {
                            "InstanceId": i,
                            "AvailabilityZone": f"{REGION}a",
                            "LifecycleState": "InService",
                            "HealthStatus": "Healthy",
                            "ProtectedFromScaleIn": False,
                        }
                        for i in instances
                    ],
                }
            ]
        },
        {"AutoScalingGroupNames": [GROUP]},
    )


def rollout(account: dict[str, Any], autoscaling: Any, smoke_ok: bool = True) -> tuple[Rollout, list[int]]:
    smoked: list[int] = []

    def smoke() -> bool:
        smoked.append(1)
        return smoke_ok

    clock = Clock()
    step = Rollout(
        autoscaling=autoscaling,
        ec2=account["ec2"],
        ssm=account["ssm"],
        platform=load_platform(),
        environment="dev",
        group_name=GROUP,
        alarm_names=ALARMS,
        smoke=smoke,
        refresh=Refresh(poll_seconds=30),
        sleep=clock.sleep,
        clock=clock,
    )
    return step, smoked


def promoted_pair(account: dict[str, Any]) -> tuple[str, str]:
    ec2, ssm, platform = account["ec2"], account["ssm"], load_platform()
    old = register_image(ec2, "old", {tags.VERIFIED: "t"})
    new = register_image(ec2, "new", {tags.VERIFIED: "t"})
    promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", old)
    promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", new)
    return old, new


def test_a_rollout_whose_alarm_fires_rolls_back(account: dict[str, Any]) -> None:
    ec2, ssm = account["ec2"], account["ssm"]
    old, new = promoted_pair(account)
    running = fleet(ec2, old)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    step, smoked = rollout(account, autoscaling)
    with Stubber(autoscaling) as stub:
        alarm = "Alarm SynapScribe-dev-Compute-AgentCore5xx went into ALARM state"
        expect_refresh(stub, running, "r-1", [("InProgress", ""), ("Failed", alarm)])
        # The rollback's refresh: back to the old image (the instances replaced so far run new).
        replaced = fleet(ec2, new, 1)
        expect_refresh(stub, [running[0], *replaced], "r-2", [("InProgress", ""), ("Successful", "")])
        with pytest.raises(PipelineError) as caught:
            step.run()
        stub.assert_no_pending_responses()
    assert caught.value.exit == Exit.ROLLOUT_FAILED and alarm in str(caught.value)
    assert smoked == [], "no smoke test after a failed refresh"
    channel = load_platform().ami.channel("dev")
    assert channels.state(ssm, channel) == channels.ChannelState(old, new)
    found = image_tags(ec2, new)
    assert alarm in found[tags.rollout_failed("dev")] and tags.rolled_out("dev") not in found


def test_a_failed_smoke_test_rolls_back(account: dict[str, Any]) -> None:
    ec2, ssm = account["ec2"], account["ssm"]
    old, new = promoted_pair(account)
    running = fleet(ec2, old, 1)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    step, smoked = rollout(account, autoscaling, smoke_ok=False)
    with Stubber(autoscaling) as stub:
        expect_refresh(stub, running, "r-1", [("Successful", "")])
        replaced = fleet(ec2, new, 1)
        expect_refresh(stub, replaced, "r-2", [("Successful", "")])
        with pytest.raises(PipelineError, match="the smoke test failed; rolled back to"):
            step.run()
    assert smoked == [1]
    assert channels.state(ssm, load_platform().ami.channel("dev")).current == old


def test_a_good_rollout_tags_the_image_and_is_idempotent(account: dict[str, Any]) -> None:
    ec2 = account["ec2"]
    old, new = promoted_pair(account)
    running = fleet(ec2, old, 1)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    step, smoked = rollout(account, autoscaling)
    with Stubber(autoscaling) as stub:
        expect_refresh(stub, running, "r-1", [("InProgress", ""), ("Successful", "")])
        assert step.run() == new
    assert smoked == [1] and tags.rolled_out("dev") in image_tags(ec2, new)
    # Again, once the fleet runs the image: no refresh (our skip matching), the smoke test again.
    ec2.terminate_instances(InstanceIds=running)
    now_running = fleet(ec2, new, 1)
    with Stubber(autoscaling) as stub:
        expect_group(stub, now_running)
        assert step.run() == new
        stub.assert_no_pending_responses()
    assert smoked == [1, 1]


def test_rollout_refuses_an_image_not_promoted(account: dict[str, Any]) -> None:
    step, _ = rollout(account, boto3.client("autoscaling", region_name=REGION))
    with pytest.raises(PipelineError) as caught:
        step.run()
    assert caught.value.exit == Exit.REFUSED


# ---------------------------------------------------------------------------------------------
# prune


def test_prune_keeps_what_is_in_use(account: dict[str, Any]) -> None:
    ec2, ssm, platform = account["ec2"], account["ssm"], load_platform()
    images = [register_image(ec2, f"img-{n}", {tags.VERIFIED: "t"}) for n in range(7)]
    for image in images[:4]:  # dev's channel went through 0..3: current 3, previous 2
        promote.promote(ec2, ssm, platform, ENVIRONMENTS, "dev", image)
    fleet(ec2, images[0], 1)  # an old instance still runs image 0
    ec2.create_launch_template(LaunchTemplateName="pinned", LaunchTemplateData={"ImageId": images[1]})
    for n, image in enumerate(images):  # creation order: newest last
        ec2.create_tags(Resources=[image], Tags=[{"Key": "order", "Value": str(n)}])
    by_age = {image: f"2026-12-0{n + 1}T00:00:00.000Z" for n, image in enumerate(images)}

    real = ec2.describe_images

    def dated(**kwargs: Any) -> Any:
        answer = real(**kwargs)
        for i in answer["Images"]:
            i["CreationDate"] = by_age.get(i["ImageId"], i["CreationDate"])
        return answer

    ec2.describe_images = dated
    snapshots = {i: image_snapshot(ec2, i) for i in images}
    pruned, in_use = prune.prune(ec2, ssm, platform, ENVIRONMENTS, keep=1)
    # Kept: 6 (newest never promoted), 3 (dev's newest and current), 2 (dev's previous),
    # 0 (an instance runs it), 1 (a launch template names it). Gone: 4 and 5.
    assert sorted(p.image_id for p in pruned) == sorted([images[4], images[5]])
    assert in_use >= {images[0], images[1], images[2], images[3]}
    left = {i["ImageId"] for i in real(Owners=["self"])["Images"]}
    assert left == {images[n] for n in (0, 1, 2, 3, 6)}
    existing = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert snapshots[images[4]] not in existing and snapshots[images[5]] not in existing
    assert snapshots[images[6]] in existing
    # Idempotent: nothing more to do.
    assert prune.prune(ec2, ssm, platform, ENVIRONMENTS, keep=1)[0] == []


def image_snapshot(ec2: Any, image: str) -> str:
    return str(
        ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    )


def deployed(cfn: Any, environment: str) -> None:
    """The environment's stacks with the outputs the rollout reads (moto's CloudFormation)."""
    outputs = {
        "Api": {"WebSocketUrl": f"wss://example.execute-api.{REGION}.amazonaws.com/prod"},
        "Identity": {"IdentityPoolId": f"{REGION}:00000000-0000-0000-0000-000000000000"},
        "Compute": {"AutoScalingGroupName": GROUP, "FleetAlarmNames": ",".join(ALARMS)},
    }
    for part, values in outputs.items():
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in values.items()},
        }
        cfn.create_stack(StackName=f"SynapScribe-{environment}-{part}", TemplateBody=json.dumps(template))


def test_cli_rollback_puts_the_previous_image_back_and_refreshes(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, ssm = account["ec2"], account["ssm"]
    old, new = promoted_pair(account)
    running = fleet(ec2, new, 1)
    cfn = boto3.client("cloudformation", region_name=REGION)
    deployed(cfn, "dev")
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    clients = {"ec2": ec2, "ssm": ssm, "cloudformation": cfn, "autoscaling": autoscaling}
    parser, _ = ami_cli_parser()
    args = parser.parse_args(["ami", "rollback", "dev", "--checkpoint-delay", "600", "--region", REGION])
    with Stubber(autoscaling) as stub:
        expect_refresh(stub, running, "r-1", [("Successful", "")])
        assert ami_cli.run(args, clients.__getitem__) == Exit.OK
        stub.assert_no_pending_responses()
    assert channels.state(ssm, load_platform().ami.channel("dev")) == channels.ChannelState(old, new)
    assert "rolled back by hand" in image_tags(ec2, new)[tags.rollout_failed("dev")]
    assert f"rollback dev: {new} -> {old}" in capsys.readouterr().out
    # A channel with nothing before: refused, nothing changed.
    prod = load_platform().ami.channel("prod")
    with pytest.raises(PipelineError, match=f"nothing to roll back to: {prod.previous} is not set") as caught:
        promote.rollback(ec2, ssm, load_platform(), "prod")
    assert caught.value.exit == Exit.REFUSED
    assert channels.state(ssm, prod) == channels.ChannelState(None, None)


def test_cli_verify_picks_the_newest_image_waiting(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --image, verify takes a baked image neither verified nor failed: none here."""
    ec2 = account["ec2"]
    register_image(ec2, "failed", {tags.BAKED: "t", tags.VERIFY_FAILED: "t never ready"})
    register_image(ec2, "done", {tags.BAKED: "t", tags.VERIFIED: "t"})
    parser, _ = ami_cli_parser()
    argv = ["ami", "verify", "--subnet-id", "subnet-1", "--security-group-id", "sg-1"]
    args = parser.parse_args([*argv, "--instance-profile", "p", "--region", REGION])
    assert ami_cli.run(args, {"ec2": ec2}.__getitem__) == Exit.OK
    assert "no baked image waiting to be verified" in capsys.readouterr().out
