"""What every VPC of the app carries: rejected traffic logged, and the template check's warning
about literal zone names acknowledged (the network stack's and the image pipeline's verify VPC)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from synapscribe_cdk.constructs.log_groups import retained_log_group


def rejected_traffic_flow_logs(scope: Construct, retention_days: int) -> dict[str, ec2.FlowLogOptions]:
    """A VPC's `flow_logs`: its rejected traffic into a retained log group `FlowLogs` of `scope`."""
    return {
        "Rejected": ec2.FlowLogOptions(
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                retained_log_group(scope, "FlowLogs", retention_days)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
    }


def acknowledge_listed_zones(vpc: ec2.Vpc) -> None:
    # CDK's own template check warns about literal zone names; they are configuration here.
    Validations.of(vpc).acknowledge(
        Acknowledgment(
            id="CloudFormation-Validate::W3010",
            reason="Zones are listed in configuration so synth needs no AWS lookup.",
        )
    )
