"""An account on moto for the image pipeline's tests: a VPC for the verify instance, images with
snapshots, and botocore Stubber scripts for what moto does not answer (SSM command output, instance
refresh details)."""

from __future__ import annotations

import json
from typing import Any

from botocore.stub import Stubber
from synapscribe import image_names as tags

REGION = "eu-west-1"


def register_image(ec2: Any, name: str, created_tags: dict[str, str] | None = None) -> str:
    """An image of the project (Packer's Project tag) with its own snapshot."""
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    image = ec2.register_image(
        Name=name,
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot}}],
    )["ImageId"]
    tags.put(ec2, image, {tags.PROJECT_KEY: tags.PROJECT_VALUE, **(created_tags or {})})
    return str(image)


def image_tags(ec2: Any, image_id: str) -> dict[str, str]:
    return tags.as_dict(ec2.describe_images(ImageIds=[image_id])["Images"][0].get("Tags"))


def verify_network(ec2: Any, iam: Any) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="verify", Description="no inbound", VpcId=vpc)["GroupId"]
    iam.create_instance_profile(InstanceProfileName="SynapScribe-ImageVerify")
    return {"subnet": subnet, "group": group, "profile": "SynapScribe-ImageVerify"}


class HostScript:
    """SSM Run Command answers in the order the verify step asks (Stubber checks the order)."""

    def __init__(self, stub: Stubber) -> None:
        self.stub = stub
        self.n = 0

    def unreachable(self) -> None:
        self.stub.add_client_error("send_command", "InvalidInstanceId")

    def command(self, rc: int, out: str = "", err: str = "") -> None:
        self.n += 1
        command_id = f"00000000-0000-0000-0000-{self.n:012d}"
        self.stub.add_response("send_command", {"Command": {"CommandId": command_id}})
        self.stub.add_response("get_command_invocation", {"Status": "InProgress"})
        self.stub.add_response(
            "get_command_invocation",
            {
                "Status": "Success" if rc == 0 else "Failed",
                "ResponseCode": rc,
                "StandardOutputContent": out,
                "StandardErrorContent": err,
            },
        )


def timeline(ready_seconds: float | None = 412.5, missing: list[str] | None = None) -> str:
    steps = [{"step": "kernel_done", "at": "2026-12-07T03:00:10.000Z", "seconds": 10.0}]
    if ready_seconds is not None:
        steps.append({"step": "agentcore:ready", "at": "2026-12-07T03:07:00.000Z", "seconds": ready_seconds})
    return json.dumps(
        {
            "origin": "launch",
            "originAt": "2026-12-07T03:00:00.000Z",
            "steps": steps,
            "missing": missing or [],
        }
    )
