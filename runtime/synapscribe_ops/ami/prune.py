"""prune: deregister old images and delete their snapshots, keeping what is or may be in use.

An image is kept when it is among the `keep` newest of any of its groups (each environment's
promoted images, and the images never promoted), when a channel names it (current or previous),
when an instance that is not terminated runs it, or when a launch template version names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synapscribe import image_names as tags
from synapscribe.platform import PlatformConfig

from synapscribe_ops.ami import channels
from synapscribe_ops.ami.images import Image, project_images


@dataclass(frozen=True)
class Pruned:
    image_id: str
    snapshots: tuple[str, ...]


def channel_images(ssm: Any, platform: PlatformConfig, environments: list[str]) -> set[str]:
    named: set[str] = set()
    for environment in environments:
        state = channels.state(ssm, platform.ami.channel(environment))
        named.update(i for i in (state.current, state.previous) if i)
    return named


def instance_images(ec2: Any) -> set[str]:
    used: set[str] = set()
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped", "shutting-down"],
            }
        ]
    )
    for page in pages:
        used.update(i["ImageId"] for r in page["Reservations"] for i in r["Instances"])
    return used


def template_images(ec2: Any) -> set[str]:
    """Image ids written into launch template versions (a `resolve:ssm:` one names a channel,
    which channel_images covers)."""
    used: set[str] = set()
    for page in ec2.get_paginator("describe_launch_templates").paginate():
        for template in page["LaunchTemplates"]:
            versions = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
            for version in versions["LaunchTemplateVersions"]:
                image = version.get("LaunchTemplateData", {}).get("ImageId", "")
                if image.startswith("ami-"):
                    used.add(image)
    return used


def newest(images: list[Image], environments: list[str], keep: int) -> set[str]:
    """The `keep` newest images of each group (images are sorted newest first)."""
    kept: set[str] = set()
    for environment in environments:
        kept.update(i.id for i in [i for i in images if tags.promoted(environment) in i.tags][:keep])
    never = [i for i in images if not any(tags.promoted(e) in i.tags for e in environments)]
    kept.update(i.id for i in never[:keep])
    return kept


def prune(
    ec2: Any, ssm: Any, platform: PlatformConfig, environments: list[str], keep: int, dry_run: bool = False
) -> tuple[list[Pruned], set[str]]:
    """What was (or with dry_run would be) deleted, and the ids kept because they are in use."""
    if keep < 1:
        raise ValueError("keep at least one image per channel")
    images = project_images(ec2)
    in_use = channel_images(ssm, platform, environments) | instance_images(ec2) | template_images(ec2)
    kept = newest(images, environments, keep) | in_use
    pruned = []
    for image in images:
        if image.id in kept:
            continue
        if not dry_run:
            ec2.deregister_image(ImageId=image.id)
            for snapshot in image.snapshots:
                ec2.delete_snapshot(SnapshotId=snapshot)
        pruned.append(Pruned(image.id, image.snapshots))
    return pruned, in_use & {i.id for i in images}
