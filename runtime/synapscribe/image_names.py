"""Names the image pipeline (synapscribe_ops.ami) shares with the CDK app: what each step records on
the image (its tags are the pipeline's state), and the environment stacks' prefix.

Promotion reads them (prod takes only an image tagged as having passed a dev rollout), prune and
an operator read them (`aws ec2 describe-images --image-ids ID --query Images[].Tags`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: The CDK app's stacks of one environment (cdk/synapscribe_cdk/application.py names them so).
STACK_PREFIX = "SynapScribe-{env}-"

PREFIX = "synapscribe:"
#: Set by Packer (ami/synapscribe.pkr.hcl): marks the project's images.
PROJECT_KEY, PROJECT_VALUE = "Project", "synapscribe"
MODEL_COMMIT = "ModelCommit"
BAKED = PREFIX + "baked"
VERIFIED = PREFIX + "verified"
VERIFY_FAILED = PREFIX + "verify-failed"
LAUNCH_TO_READY = PREFIX + "launch-to-ready-seconds"
#: On the verify instance: what launched it and for which image.
PURPOSE = PREFIX + "purpose"
VERIFY_PURPOSE = "verify"
IMAGE = PREFIX + "image"
#: Tag values are at most 256 characters (EC2 tag restrictions).
VALUE_LIMIT = 256


def promoted(environment: str) -> str:
    return f"{PREFIX}promoted-{environment}"


def rolled_out(environment: str) -> str:
    """The image passed a rollout in `environment` (refresh and smoke test)."""
    return f"{PREFIX}rolled-out-{environment}"


def rollout_failed(environment: str) -> str:
    return f"{PREFIX}rollout-failed-{environment}"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def put(ec2: Any, image_id: str, values: dict[str, str]) -> None:
    """Tag the image (values cut to EC2's limit: a reason is a diagnostic, not a contract)."""
    ec2.create_tags(
        Resources=[image_id],
        Tags=[{"Key": k, "Value": v[:VALUE_LIMIT]} for k, v in values.items()],
    )
