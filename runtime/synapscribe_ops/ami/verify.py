"""verify: one spot instance of the fleet's first type from the new image, checked, terminated.

The instance starts in a private subnet, with a security group that has no inbound rule, IMDSv2
required and no key pair: everything goes through SSM Run Command (host.py). In order, each
failure stopping the step (exit VERIFY_FAILED) and the instance terminated whatever happened:

1. the host's own readiness: its start-up timeline (synapscribe.host_timeline, written once
   vLLM listed the model and AgentCore's /ready answered, or its wait gave up) with no step
   missing, and the units active;
2. the host tests (tests/host) through the Session Manager backend (tests/host/ssm_backend.py);
3. the canned spoken question about the canned lecture (shipped with the tests), asked on the
   host (probe.py): the transcript's word accuracy and an answer naming the lecture's term;
4. the timeline's launch-to-ready, recorded on the image beside fleet.host_startup_seconds.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapscribe import image_names as tags
from synapscribe.platform import PlatformConfig

from synapscribe_ops.ami.errors import Exit, PipelineError
from synapscribe_ops.ami.host import HostCommands, NotReachable
from synapscribe_ops.ami.images import describe
from synapscribe_ops.bench.accuracy import word_errors

#: The transcript of the canned question must get at least this share of its words right.
MIN_WORD_ACCURACY = 0.9
#: What the readiness command exits with while the timeline is not written yet.
NOT_YET = 75
UNITS_DOWN = 76
#: Where the host's timeline lands (ansible/roles/agentcore/defaults: agentcore_timeline_file).
TIMELINE_DEFAULTS = Path("ansible") / "roles" / "agentcore" / "defaults" / "main.yml"
CANNED_DIR = Path("tests") / "host" / "canned"
#: The host test that needs a local vLLM install (left out of verify, see host_tests).
PARSE_FLAGS_LOCALLY = "test_vllm_command_line_accepted_by_pinned_vllm"
#: What AgentCore's settings require at start (the user data of a fleet instance writes the real
#: ones); nothing here is contacted by the readiness checks or the canned question.
VERIFY_DEPLOY_ENV = {
    "SYNAPSCRIBE_BUCKET": "synapscribe-verify",
    "SYNAPSCRIBE_CONNECTIONS_TABLE": "synapscribe-verify-connections",
    "SYNAPSCRIBE_LECTURES_TABLE": "synapscribe-verify-lectures",
    "SYNAPSCRIBE_SESSIONS_TABLE": "synapscribe-verify-sessions",
    "SYNAPSCRIBE_LIMITS_TABLE": "synapscribe-verify-limits",
    "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/connections",
}


@dataclass(frozen=True)
class Target:
    """Where the verify instance runs (the ImagePipeline stack's outputs)."""

    instance_type: str
    subnet_id: str
    security_group_id: str
    instance_profile: str


@dataclass(frozen=True)
class Canned:
    """The canned lecture and spoken question (tests/host/canned)."""

    lecture: str
    question_text: str
    question_audio: bytes
    audio_format: str
    seconds: float
    term: str

    @classmethod
    def load(cls, directory: Path) -> Canned:
        meta = json.loads((directory / "canned.json").read_text(encoding="utf-8"))
        return cls(
            lecture=(directory / meta["lecture"]).read_text(encoding="utf-8"),
            question_text=meta["question_text"],
            question_audio=(directory / meta["question_audio"]).read_bytes(),
            audio_format=meta["format"],
            seconds=float(meta["seconds"]),
            term=meta["term"],
        )


@dataclass(frozen=True)
class Verified:
    image_id: str
    launch_to_ready_seconds: float | None
    already: bool = False


def timeline_file(repo: Path) -> str:
    import yaml

    defaults = yaml.safe_load((repo / TIMELINE_DEFAULTS).read_text(encoding="utf-8"))
    return str(defaults["agentcore_timeline_file"])


def user_data(platform: PlatformConfig, region: str) -> str:
    """Write a deploy environment (AgentCore refuses to start without one) and start the units."""
    host = platform.host
    values = {**VERIFY_DEPLOY_ENV, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    vllm, tts, agentcore = host.units.services()
    lines = [
        "#!/bin/bash",
        "set -euo pipefail",
        f"install -d -m 0755 {host.config_dir}",
        f"cat > {host.deploy_env_file} <<'SYNAPSCRIBE_ENV'",
        *(f"{k}={v}" for k, v in sorted(values.items())),
        "SYNAPSCRIBE_ENV",
        f"systemctl start {vllm} {tts}",
        f"systemctl restart {agentcore}",
    ]
    return "\n".join(lines) + "\n"


def launch(ec2: Any, image_id: str, target: Target, platform: PlatformConfig, region: str) -> str:
    instance_tags = [
        {"Key": tags.PROJECT_KEY, "Value": tags.PROJECT_VALUE},
        {"Key": tags.PURPOSE, "Value": tags.VERIFY_PURPOSE},
        {"Key": tags.IMAGE, "Value": image_id},
        {"Key": "Name", "Value": f"synapscribe-verify-{image_id}"},
    ]
    reservation = ec2.run_instances(
        ImageId=image_id,
        InstanceType=target.instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=target.subnet_id,
        SecurityGroupIds=[target.security_group_id],
        IamInstanceProfile={"Name": target.instance_profile},
        InstanceMarketOptions={
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        },
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        InstanceInitiatedShutdownBehavior="terminate",
        UserData=user_data(platform, region),
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": instance_tags},
            {"ResourceType": "volume", "Tags": instance_tags},
        ],
    )
    return str(reservation["Instances"][0]["InstanceId"])


def readiness_script(platform: PlatformConfig, timeline: str) -> str:
    units = " ".join(platform.host.units.services())
    return (
        f"test -s {timeline} || exit {NOT_YET}\n"
        f"cat {timeline}\n"
        f"systemctl is-active --quiet {units} || {{ systemctl is-active {units} >&2; exit {UNITS_DOWN}; }}\n"
    )


def wait_ready(host: HostCommands, platform: PlatformConfig, timeline: str, timeout: float) -> dict[str, Any]:
    """The host's timeline once written with every step seen and the units active."""
    deadline = host.clock() + timeout
    script = readiness_script(platform, timeline)
    while True:
        try:
            result = host.run(script, timeout=60)
        except NotReachable:
            result = None
        if result is not None and result.rc in (0, UNITS_DOWN):
            document: dict[str, Any] = json.loads(result.stdout)
            if document.get("missing"):
                raise PipelineError(
                    Exit.VERIFY_FAILED,
                    f"the host never became ready: not seen {', '.join(document['missing'])}",
                )
            if result.rc == UNITS_DOWN:
                raise PipelineError(Exit.VERIFY_FAILED, f"units not active: {result.stderr.strip()}")
            return document
        if host.clock() >= deadline:
            state = "not reachable through SSM" if result is None else "wrote no start-up timeline"
            raise PipelineError(
                Exit.VERIFY_FAILED, f"the host never became ready within {timeout:g} s ({state})"
            )
        host.sleep(host.poll_seconds)


def probe_script(platform: PlatformConfig, canned: Canned) -> str:
    python = f"{platform.host.venvs.runtime}/bin/python"
    audio = base64.b64encode(canned.question_audio).decode()
    return "\n".join(
        [
            "set -euo pipefail",
            "d=$(mktemp -d)",
            "trap 'rm -rf \"$d\"' EXIT",
            f"base64 -d > \"$d/question.{canned.audio_format}\" <<'B64'",
            audio,
            "B64",
            "cat > \"$d/lecture.txt\" <<'LECTURE'",
            canned.lecture.rstrip("\n"),
            "LECTURE",
            f'{python} -m synapscribe.host_probe --lecture "$d/lecture.txt" '
            f'--question "$d/question.{canned.audio_format}" --format {canned.audio_format} '
            f"--seconds {canned.seconds:g}",
        ]
    )


def answer_problems(canned: Canned, transcript: str, answer: str) -> list[str]:
    problems = []
    accuracy = word_errors(canned.question_text, transcript).accuracy
    if accuracy < MIN_WORD_ACCURACY:
        problems.append(
            f"transcript word accuracy {accuracy:.0%} < {MIN_WORD_ACCURACY:.0%}: {transcript[:120]!r}"
        )
    if canned.term.lower() not in answer.lower():
        problems.append(f"the answer does not name {canned.term!r}: {answer[:160]!r}")
    return problems


def ask_canned(host: HostCommands, platform: PlatformConfig, canned: Canned) -> None:
    result = host.run(probe_script(platform, canned), timeout=300)
    if result.rc != 0:
        raise PipelineError(
            Exit.VERIFY_FAILED, f"the canned question failed on the host: {result.stderr[-500:]}"
        )
    reply = json.loads(result.stdout)
    problems = answer_problems(canned, reply["transcript"], reply["answer"])
    if problems:
        raise PipelineError(Exit.VERIFY_FAILED, "wrong answer to the canned question: " + "; ".join(problems))


def launch_to_ready(timeline: dict[str, Any]) -> float | None:
    """Seconds from the instance's launch to AgentCore's /ready (None without a launch origin)."""
    if timeline.get("origin") != "launch":
        return None
    steps = {s["step"]: s["seconds"] for s in timeline.get("steps", [])}
    ready = steps.get("agentcore:ready")
    return float(ready) if ready is not None else None


def host_tests(repo: Path) -> Callable[[str], int]:
    """Runs tests/host/test_host.py against the instance through the SSM backend (`--hosts ssm://`)."""

    def run(instance_id: str) -> int:
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/host/test_host.py"]
        argv += ["--hosts", f"ssm://{instance_id}"]
        # That test installs the pinned vLLM here (about 6 GB) to parse the unit's flags; the bake's
        # validate.sh already checked the image's vLLM, and the instance serving proves its flags.
        argv += ["--deselect", f"tests/host/test_host.py::{PARSE_FLAGS_LOCALLY}"]
        print(f"verify: {shlex.join(argv)}", file=sys.stderr)
        return subprocess.run(argv, cwd=repo, check=False).returncode

    return run


@dataclass
class Verifier:
    ec2: Any
    ssm: Any
    platform: PlatformConfig
    region: str
    target: Target
    canned: Canned
    timeline: str
    run_host_tests: Callable[[str], int]
    ready_timeout: float = 1800.0
    poll_seconds: float = 15.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def verify(self, image_id: str) -> Verified:
        image = describe(self.ec2, image_id)
        if tags.VERIFIED in image.tags:
            recorded = image.tags.get(tags.LAUNCH_TO_READY)
            return Verified(image_id, float(recorded) if recorded else None, already=True)
        if tags.BAKED not in image.tags:
            raise PipelineError(
                Exit.REFUSED, f"{image_id} is not tagged {tags.BAKED}: bake it with `synapscribe ami bake`"
            )
        instance_id = launch(self.ec2, image_id, self.target, self.platform, self.region)
        print(
            f"verify: launched {instance_id} ({self.target.instance_type}, spot) from {image_id}",
            file=sys.stderr,
        )
        try:
            seconds = self._check(instance_id)
        except PipelineError as exc:
            tags.put(self.ec2, image_id, {tags.VERIFY_FAILED: f"{tags.now()} {exc}"})
            raise
        finally:
            self.ec2.terminate_instances(InstanceIds=[instance_id])
            print(f"verify: terminated {instance_id}", file=sys.stderr)
        values = {tags.VERIFIED: tags.now()}
        if seconds is not None:
            values[tags.LAUNCH_TO_READY] = f"{seconds:g}"
        tags.put(self.ec2, image_id, values)
        return Verified(image_id, seconds)

    def _check(self, instance_id: str) -> float | None:
        host = HostCommands(
            self.ssm, instance_id, poll_seconds=self.poll_seconds, sleep=self.sleep, clock=self.clock
        )
        timeline = wait_ready(host, self.platform, self.timeline, self.ready_timeout)
        code = self.run_host_tests(instance_id)
        if code != 0:
            raise PipelineError(Exit.VERIFY_FAILED, f"the host tests failed (pytest exit {code})")
        ask_canned(host, self.platform, self.canned)
        return launch_to_ready(timeline)
