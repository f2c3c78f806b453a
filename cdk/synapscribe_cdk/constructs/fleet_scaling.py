"""Scaling the GPU fleet on its load: AgentCore's requests in flight per instance.

The policy is the one `synapscribe simulate` modelled (runtime/synapscribe_ops/simulate/policy.py,
`TargetTracker`; the settings and constants both read are in runtime/synapscribe/scaling.py), with
the environment's cdk.json `scaling` block:

- Scale-out: a target-tracking policy on `InFlightToModel` averaged over the group (AgentCore's
  EMF metric with the AutoScalingGroupName dimension, agentcore/metrics.py). Target tracking
  creates its own alarms; its scale-out alarm needs 3 one-minute datapoints above the target
  ("Target tracking scaling policies for Amazon EC2 Auto Scaling", User Guide). EC2 Auto Scaling's
  target tracking has no cooldown: it uses instance warmup instead, during which a new instance
  does not count towards the group's capacity, so the policy does not launch again for the same
  load ("Set the default instance warmup", User Guide; re:Post "slow down asg target tracking
  scale out"). The warmup is the simulator's scale-out cooldown.
- Scale-in: the target-tracking policy's own scale-in is disabled, because it cannot hold a
  cooldown. A simple scaling policy removes one instance when the group's average stays below
  SCALE_IN_FRACTION of the target for SCALE_IN_DATAPOINTS minutes; simple scaling honours a
  cooldown after any launch or termination of the group ("Scaling cooldowns for Amazon EC2 Auto
  Scaling", User Guide), which is the simulator's scale-in cooldown.
- The customized metric: one metric, statistic Average, with every dimension the metric was
  published with (the API reference's CustomizedMetricSpecification; a metric changing in inverse
  proportion to capacity, as in-flight per instance does).
- The schedule stays the floor: its actions set MinSize (gpu_fleet.py), and no policy takes the
  group below MinSize or above MaxSize.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct
from synapscribe.agentcore.metrics import NAMESPACE
from synapscribe.scaling import (
    METRIC_PERIOD_SECONDS,
    SCALE_IN_DATAPOINTS,
    SCALE_IN_FRACTION,
    ScalingSettings,
)

#: AgentCore's sampled requests in flight (agentcore/metrics.py QuestionMetrics.documents).
IN_FLIGHT_METRIC = "InFlightToModel"
GROUP_DIMENSION = "AutoScalingGroupName"


def in_flight_per_instance(group_name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=IN_FLIGHT_METRIC,
        dimensions_map={GROUP_DIMENSION: group_name},
        statistic="Average",
        period=Duration.seconds(METRIC_PERIOD_SECONDS),
    )


class FleetScaling(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group: autoscaling.AutoScalingGroup,
        group_name: str,
        scaling: ScalingSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        metric = in_flight_per_instance(group_name)
        self.scale_out = group.scale_to_track_metric(
            "InFlightTracking",
            metric=metric,
            target_value=scaling.target_in_flight_per_instance,
            disable_scale_in=True,
            estimated_instance_warmup=Duration.seconds(scaling.scale_out_cooldown_seconds),
        )
        self.scale_in = autoscaling.CfnScalingPolicy(
            self,
            "ScaleIn",
            auto_scaling_group_name=group.auto_scaling_group_name,
            policy_type="SimpleScaling",
            adjustment_type="ChangeInCapacity",
            scaling_adjustment=-1,
            cooldown=str(scaling.scale_in_cooldown_seconds),
        )
        self.scale_in_alarm = metric.create_alarm(
            self,
            "LowLoad",
            alarm_description=(
                f"In-flight requests per GPU instance below {SCALE_IN_FRACTION:.0%} of the target for "
                f"{SCALE_IN_DATAPOINTS} minutes: remove one instance (scale-in policy, cooldown "
                f"{scaling.scale_in_cooldown_seconds} s)."
            ),
            threshold=SCALE_IN_FRACTION * scaling.target_in_flight_per_instance,
            evaluation_periods=SCALE_IN_DATAPOINTS,
            datapoints_to_alarm=SCALE_IN_DATAPOINTS,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # No hosts, no datapoints: nothing to remove (the schedule's floor takes it to zero).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        cfn_alarm = self.scale_in_alarm.node.default_child
        assert isinstance(cfn_alarm, cloudwatch.CfnAlarm)
        cfn_alarm.alarm_actions = [self.scale_in.attr_arn]
