"""promote and rollback: move an image into an environment's channel, or the previous one back.

The environments form a line in cdk.json's order (dev, then prod): the first takes only a
verified image, each next one only an image that passed a rollout in the one before. A refused
promotion changes nothing (exit REFUSED).
"""

from __future__ import annotations

from typing import Any

from synapscribe import image_names as tags
from synapscribe.platform import PlatformConfig

from synapscribe_ops.ami import channels
from synapscribe_ops.ami.errors import Exit, PipelineError
from synapscribe_ops.ami.images import Image, describe, project_images


def requirement(environments: list[str], environment: str) -> tuple[str, str]:
    """The tag an image needs before it may enter `environment`, and the step that sets it."""
    if environment not in environments:
        raise PipelineError(
            Exit.USAGE, f"no environment {environment!r} (cdk.json has {', '.join(environments)})"
        )
    index = environments.index(environment)
    if index == 0:
        return tags.VERIFIED, "synapscribe ami verify"
    before = environments[index - 1]
    return tags.rolled_out(before), f"synapscribe ami rollout {before}"


def candidate(ec2: Any, ssm: Any, platform: PlatformConfig, environments: list[str], environment: str) -> str:
    """The image to promote when none is named: the newest verified image for the first
    environment, the previous environment's channel for the others."""
    index = environments.index(environment)
    if index > 0:
        before = platform.ami.channel(environments[index - 1])
        current = channels.read_parameter(ssm, before.current)
        if current is None:
            raise PipelineError(Exit.REFUSED, f"nothing to promote: {before.current} is not set")
        return current
    verified = [i for i in project_images(ec2) if tags.VERIFIED in i.tags and i.state == "available"]
    if not verified:
        raise PipelineError(Exit.REFUSED, "nothing to promote: no verified image (synapscribe ami verify)")
    return verified[0].id


def check_order(image: Image, environments: list[str], environment: str) -> None:
    needed, step = requirement(environments, environment)
    if needed not in image.tags:
        raise PipelineError(
            Exit.REFUSED,
            f"{image.id} is not tagged {needed}: it must pass `{step}` before it enters {environment}",
        )
    if image.state != "available":
        raise PipelineError(Exit.REFUSED, f"{image.id} is {image.state}, not available")


def promote(
    ec2: Any,
    ssm: Any,
    platform: PlatformConfig,
    environments: list[str],
    environment: str,
    image_id: str | None = None,
) -> tuple[str, channels.ChannelState]:
    """Point `environment`'s channel at the image (kept: the id it replaces); the image and the
    channel's state before."""
    requirement(environments, environment)
    image_id = image_id or candidate(ec2, ssm, platform, environments, environment)
    image = describe(ec2, image_id)
    check_order(image, environments, environment)
    before = channels.promote(ssm, platform.ami.channel(environment), image_id)
    if tags.promoted(environment) not in image.tags:
        tags.put(ec2, image_id, {tags.promoted(environment): tags.now()})
    return image_id, before


def rollback(ec2: Any, ssm: Any, platform: PlatformConfig, environment: str) -> channels.ChannelState:
    """Put the channel's previous image back; the state before. The image it replaces is tagged
    rollout-failed-ENV unless it already carries a reason."""
    channel = platform.ami.channel(environment)
    before = channels.rollback(ssm, channel)
    if before.current is not None:
        image = describe(ec2, before.current)
        if tags.rollout_failed(environment) not in image.tags:
            tags.put(
                ec2, before.current, {tags.rollout_failed(environment): f"{tags.now()} rolled back by hand"}
            )
    return before
