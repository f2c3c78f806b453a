"""The GPU fleet's log groups (the CloudWatch agent's destinations) and the right to write only them.

The names are platform.yaml's fleet.log_groups, the same the AMI's agent configuration uses
(ansible/roles/cloudwatch_agent); the retention is the environment's log_retention_days. The
instance role gets its own policy: create streams in, and put events to, these groups only (the
agent never creates a group, sets a retention or reads logs). AgentCore's EMF documents reach
CloudWatch as log events in the `metrics` group, so no cloudwatch:PutMetricData is granted.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct
from synapscribe.platform import LogGroups

#: What the CloudWatch agent calls to ship to an existing group ("CloudWatch agent permissions",
#: CloudWatch User Guide: CreateLogStream, DescribeLogStreams, PutLogEvents on the groups it writes).
AGENT_LOG_ACTIONS = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]


class FleetObservability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role: iam.IRole,
        log_groups: LogGroups,
        retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_groups: dict[str, logs.LogGroup] = {}
        for key, name in log_groups.model_dump().items():
            group = logs.LogGroup(
                self,
                f"{key.capitalize()}Logs",
                log_group_name=name,
                removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
            )
            cfn = group.node.default_child
            assert isinstance(cfn, logs.CfnLogGroup)
            cfn.retention_in_days = retention_days  # any valid number (config.LOG_RETENTION_DAYS)
            self.log_groups[key] = group
        statement = iam.PolicyStatement(
            actions=AGENT_LOG_ACTIONS,
            resources=[g.log_group_arn for g in self.log_groups.values()],  # ARN ends in :* (its streams)
        )
        # cdk-nag raises no finding for a log group's own ARN (its streams), so nothing to acknowledge.
        self.policy = iam.Policy(self, "ShipLogs", statements=[statement], roles=[role])
