"""The GPU fleet's log groups (the CloudWatch agent's destinations) and the right to write only them.

The names are platform.yaml's fleet.log_groups for this environment (LogGroups.names), the same
the user data renders into the AMI's agent configuration at boot (gpu_fleet.cloudwatch_agent_script),
so environments sharing an account keep apart; the retention is the environment's
log_retention_days. The instance role gets its own policy: create streams in, and put events to,
these groups only (the agent never creates a group, sets a retention or reads logs). AgentCore's
EMF documents reach CloudWatch as log events in the `metrics` group, so no
cloudwatch:PutMetricData is granted.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from synapscribe.agentcore.metrics import NAMESPACE

from synapscribe_cdk.constructs.log_groups import logs_key

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
        log_groups: dict[str, str],
        retention_days: int,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_groups: dict[str, logs.LogGroup] = {}
        for key, name in log_groups.items():
            group = logs.LogGroup(
                self,
                f"{key.capitalize()}Logs",
                log_group_name=name,
                # The stack's logs key, as every other log group: the hosts' logs carry lecture ids.
                encryption_key=logs_key(self),
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

    def add_dashboard(
        self,
        *,
        name: str,
        alarms: Sequence[cloudwatch.Alarm],
        healthy_hosts: cloudwatch.IMetric,
        max_num_seqs: int,
        target_in_flight: float | None,
        bucket_name: str,
        spot_and_drains: cloudwatch.IWidget | None = None,
        group_name: str,
    ) -> cloudwatch.Dashboard:
        """One dashboard per environment: AgentCore's EMF figures, the hosts, the Lambdas, the
        bucket, and the existing alarms. AgentCore's figures are its AutoScalingGroupName roll-up
        (agentcore/metrics.py): the group is the environment's, so dev and prod in one account
        never mix on each other's dashboard (the dimensionless roll-up is every environment's)."""
        period = Duration.minutes(1)

        def agentcore(metric: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=metric,
                statistic=statistic,
                label=label,
                period=period,
                dimensions_map={"AutoScalingGroupName": group_name},
            )

        questions = agentcore("Questions", "Sum", "questions")
        rates = [
            cloudwatch.MathExpression(
                expression=f"100 * {key} / MAX([q, 1])",
                using_metrics={"q": questions, key: agentcore(metric, "Sum", metric)},
                label=f"{metric} (% of questions)",
                period=period,
            )
            for key, metric in (("b", "Busy"), ("e", "Errors"))
        ]
        slots = [cloudwatch.HorizontalAnnotation(value=max_num_seqs, label="max_num_seqs")]
        if target_in_flight is not None:
            slots.append(cloudwatch.HorizontalAnnotation(value=target_in_flight, label="scaling target"))
        lambda_metrics = [
            cloudwatch.Metric(namespace="AWS/Lambda", metric_name=m, statistic="Sum", period=period, label=m)
            for m in ("Errors", "Throttles")
        ]
        bucket = cloudwatch.Metric(
            namespace="AWS/S3",
            metric_name="BucketSizeBytes",
            dimensions_map={"BucketName": bucket_name, "StorageType": "StandardStorage"},
            statistic="Average",
            period=Duration.days(1),
            label="bucket size (bytes)",
        )
        graphs: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Time to first audio (ms)",
                left=[agentcore("TimeToFirstAudio", s, s) for s in ("p50", "p95")],
                width=12,
            ),
            cloudwatch.GraphWidget(title="busy and error rates (%)", left=rates, width=12),
            cloudwatch.GraphWidget(
                title="Requests in flight to vLLM per instance",
                left=[agentcore("InFlightToModel", "Average", "in flight (average per instance)")],
                left_annotations=slots,
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="vLLM KV cache usage (%)",
                left=[agentcore("KvCacheUsage", s, f"KV cache {s.lower()}") for s in ("Average", "Maximum")],
                width=12,
            ),
            cloudwatch.GraphWidget(title="Healthy hosts", left=[healthy_hosts], width=8),
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles (all functions)", left=lambda_metrics, width=8
            ),
            cloudwatch.GraphWidget(title="Lecture bucket size", left=[bucket], width=8),
        ]
        if spot_and_drains is not None:
            graphs.append(spot_and_drains)
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=name)
        dashboard.add_widgets(*graphs)
        dashboard.add_widgets(*(cloudwatch.AlarmWidget(alarm=a, title=a.node.id, width=8) for a in alarms))
        return dashboard


def spot_and_drain_widget(
    notice_rule: events.IRule, termination_rule: events.IRule, drain: lambda_.IFunction
) -> cloudwatch.GraphWidget:
    """Spot interruptions and drains: how often EventBridge matched the two-minute interruption
    warning and the group's termination lifecycle action (AWS/Events `TriggeredRules` by
    `RuleName`, "Monitoring Amazon EventBridge", EventBridge User Guide), and the drain function's
    errors and longest run (it must finish within the drain window)."""
    period = Duration.minutes(5)

    def triggered(rule: events.IRule, label: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="TriggeredRules",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=period,
            label=label,
        )

    return cloudwatch.GraphWidget(
        title="Spot interruptions and drains",
        left=[
            triggered(notice_rule, "spot interruption warnings"),
            triggered(termination_rule, "terminations drained"),
            drain.metric_errors(period=period, label="drain errors"),
        ],
        right=[drain.metric_duration(period=period, statistic="Maximum", label="longest drain (ms)")],
        width=12,
    )
