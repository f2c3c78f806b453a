"""The ImagePipeline stack (one per account): the CodeBuild project running ami/buildspec.yml
weekly and on demand, its least-privilege role, the verify network, failures to the alarm topic;
and the buildspec's commands, checked by their own tools' parsers (YAML, shellcheck, argparse)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from synapscribe import image_names as tags
from synapscribe.cli import command_parser
from synapscribe.platform import load_platform
from synth_support import REPO, Synthesized, resources_of

BUILDSPEC = REPO / "ami" / "buildspec.yml"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def _one(template: dict[str, Any], cfn_type: str) -> dict[str, Any]:
    (found,) = resources_of(template, cfn_type).values()
    return found["Properties"]


def build_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    roles = resources_of(template, "AWS::IAM::Role")
    (build_role,) = [
        k for k, r in roles.items() if "codebuild" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    statements = []
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if {"Ref": build_role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def allowing(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    def actions(s: dict[str, Any]) -> list[str]:
        return s["Action"] if isinstance(s["Action"], list) else [s["Action"]]

    return [s for s in statements if action in actions(s)]


def test_project_runs_the_buildspec_weekly_and_reports_failures(synth: Synthesized) -> None:
    template = synth.templates["image_pipeline"]
    project = _one(template, "AWS::CodeBuild::Project")
    assert project["Name"] == "SynapScribe-ImagePipeline"
    assert project["Source"]["BuildSpec"] == "ami/buildspec.yml"
    assert project["Environment"]["PrivilegedMode"] is False
    assert "EncryptionKey" in project
    rules = resources_of(template, "AWS::Events::Rule")
    schedules = [
        r["Properties"]["ScheduleExpression"]
        for r in rules.values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert schedules == ["cron(0 3 ? * MON *)"]
    (failed,) = [r["Properties"] for r in rules.values() if "EventPattern" in r["Properties"]]
    assert failed["EventPattern"]["detail"]["build-status"] == ["FAILED"]
    topics = resources_of(template, "AWS::SNS::Topic")
    assert [t["Arn"]["Ref"] for t in failed["Targets"]] == list(topics)


def test_one_stack_per_account_not_per_environment(synth: Synthesized) -> None:
    stack = synth.platform.image_pipeline
    assert stack.stack_name == "SynapScribe-ImagePipeline"
    assert [e.name for e in stack.environments] == ["dev", "prod"]


def test_run_instances_only_of_the_fleets_first_type_with_the_projects_tag(synth: Synthesized) -> None:
    statements = build_statements(synth.templates["image_pipeline"])
    run = allowing(statements, "ec2:RunInstances")
    instance = [s for s in run if "instance/*" in json.dumps(s["Resource"])]
    assert len(instance) == 1
    assert instance[0]["Condition"] == {
        "StringEquals": {
            "ec2:InstanceType": "g5.2xlarge",
            f"aws:RequestTag/{tags.PROJECT_KEY}": tags.PROJECT_VALUE,
        }
    }
    assert len(run) == 2, "the other statement names no instance (the condition cannot be dodged)"
    terminate = allowing(statements, "ec2:TerminateInstances")
    assert terminate and all(s.get("Condition") for s in terminate)


def test_put_parameter_only_on_the_channels(synth: Synthesized) -> None:
    statements = build_statements(synth.templates["image_pipeline"])
    (put,) = allowing(statements, "ssm:PutParameter")
    names = sorted(json.dumps(r).split(":parameter")[1].rstrip('"]}') for r in put["Resource"])
    ami = load_platform().ami
    expected = sorted(n for e in ("dev", "prod") for n in (ami.channel(e).current, ami.channel(e).previous))
    assert names == expected
    send = allowing(statements, "ssm:SendCommand")
    on_instances = [s for s in send if "instance/*" in json.dumps(s["Resource"])]
    assert on_instances and all(
        s["Condition"] == {"StringEquals": {f"ssm:resourceTag/{tags.PURPOSE}": tags.VERIFY_PURPOSE}}
        for s in on_instances
    )
    refresh = allowing(statements, "autoscaling:StartInstanceRefresh")
    assert "SynapScribe-dev-gpu-fleet" in json.dumps(refresh) and "SynapScribe-prod-gpu-fleet" in json.dumps(
        refresh
    )


def test_verify_network_has_no_inbound_and_no_internet(synth: Synthesized) -> None:
    template = synth.templates["image_pipeline"]
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    (verify,) = [
        g for g in groups.values() if "verify instance: no inbound" in g["Properties"]["GroupDescription"]
    ]
    assert "SecurityGroupIngress" not in verify["Properties"]
    verify_id = next(k for k, g in groups.items() if g is verify)
    ingress = [
        r for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [verify_id, "GroupId"]}
    ]  # fmt: skip
    assert ingress == []
    assert resources_of(template, "AWS::EC2::InternetGateway") == {}
    assert resources_of(template, "AWS::EC2::NatGateway") == {}
    endpoints = {
        json.dumps(e["Properties"]["ServiceName"])
        for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()
    }
    assert len(endpoints) == 3 and all(any(n in e for n in ("ssm", "ec2messages")) for e in endpoints)


# ---------------------------------------------------------------------------------------------
# The buildspec


def buildspec() -> dict[str, Any]:
    return yaml.safe_load(BUILDSPEC.read_text(encoding="utf-8"))


def commands() -> list[str]:
    spec = buildspec()
    return [c for phase in spec["phases"].values() for c in phase.get("commands", [])]


def test_buildspec_is_codebuilds_shape_and_pins_packer() -> None:
    spec = buildspec()
    assert spec["version"] == 0.2 and spec["env"]["shell"] == "bash"
    assert set(spec["phases"]) <= {"install", "pre_build", "build", "post_build"}
    version = spec["env"]["variables"]["PACKER_VERSION"]
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (1, 11), "ami/ needs Packer 1.11+ (required_plugins, imds_support)"
    assert len(spec["env"]["variables"]["HASHICORP_KEY_FINGERPRINT"]) == 40


def test_buildspec_commands_pass_shellcheck(tmp_path: Path) -> None:
    """The commands as one bash script, as CodeBuild's shell runs them, variables declared."""
    spec = buildspec()
    names = [
        *spec["env"]["variables"],
        "VERIFY_SUBNET_ID",
        "VERIFY_SECURITY_GROUP_ID",
        "VERIFY_INSTANCE_PROFILE",
    ]
    script = tmp_path / "buildspec.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        + "".join(f': "${{{n}:?}}"\n' for n in names)
        + "\n".join(commands())
        + "\n"
    )
    proc = subprocess.run(
        [str(SHELLCHECK), "--format=gcc", "--exclude=SC1091", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout


#: What the project passes (ImagePipeline outputs), in the shape of real ids.
PROJECT_VARIABLES = {
    "VERIFY_SUBNET_ID": "subnet-0123456789abcdef0",
    "VERIFY_SECURITY_GROUP_ID": "sg-0123456789abcdef0",
    "VERIFY_INSTANCE_PROFILE": "SynapScribe-ImageVerify",
}


def expanded(command: str) -> list[str]:
    """The argv bash gives the command: the buildspec's and the project's variables filled in."""
    values = {**buildspec()["env"]["variables"], **PROJECT_VARIABLES}
    argv = shlex.split(command)
    for name, value in values.items():
        argv = [a.replace(f"${{{name}}}", str(value)).replace(f"${name}", str(value)) for a in argv]
    assert not [a for a in argv if "$" in a], f"an undefined variable in {command}"
    return argv


def test_buildspec_runs_every_step_in_order_and_each_parses() -> None:
    lines = [expanded(c) for c in commands() if c.startswith("synapscribe ami")]

    def step(argv: list[str]) -> str:
        if argv[2] == "promote":
            return f"promote {argv[argv.index('--to') + 1]}"
        return " ".join(argv[2:4]) if argv[2] == "rollout" else argv[2]

    order = ["bake", "verify", "promote dev", "rollout dev", "promote prod", "rollout prod", "prune"]
    assert [step(argv) for argv in lines] == order
    parser = command_parser("ami", exit_on_error=False)[0]
    for argv in lines:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                parser.parse_args(argv[1:])
            except (SystemExit, argparse.ArgumentError) as exc:
                pytest.fail(f"{shlex.join(argv)} is refused by its parser: {exc} {err.getvalue()}")


def test_buildspec_parser_check_can_fail() -> None:
    parser = command_parser("ami", exit_on_error=False)[0]
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises((SystemExit, argparse.ArgumentError)):
        parser.parse_args(["ami", "promote", "--to-env", "dev"])
