"""The project's images as the pipeline sees them: id, state, tags, snapshots, creation time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synapscribe import image_names as tags

from synapscribe_ops.ami.errors import Exit, PipelineError


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    state: str
    created: str
    tags: dict[str, str]
    snapshots: tuple[str, ...]

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Image:
        return cls(
            id=raw["ImageId"],
            name=raw.get("Name", ""),
            state=raw.get("State", "unknown"),
            created=raw.get("CreationDate", ""),
            tags=tags.as_dict(raw.get("Tags")),
            snapshots=tuple(
                m["Ebs"]["SnapshotId"]
                for m in raw.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ),
        )


def describe(ec2: Any, image_id: str) -> Image:
    """The image, or PipelineError(AWS) naming it when it does not exist (deregistered?)."""
    try:
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ec2.exceptions.ClientError as exc:
        if "InvalidAMIID" not in str(exc):
            raise
        found = []
    if not found:
        raise PipelineError(Exit.AWS, f"image {image_id} does not exist in this region (deregistered?)")
    return Image.from_api(found[0])


def project_images(ec2: Any) -> list[Image]:
    """This account's images of the project (Packer's Project tag), newest first."""
    raw = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": f"tag:{tags.PROJECT_KEY}", "Values": [tags.PROJECT_VALUE]}]
    )["Images"]
    return sorted((Image.from_api(i) for i in raw), key=lambda i: (i.created, i.id), reverse=True)
