"""The fleet's scaling settings: target tracking on AgentCore's requests in flight per instance.

`ScalingSettings` is the type of each environment's `scaling` block in cdk.json; the CDK app
(cdk/synapscribe_cdk/config.py, constructs/fleet_scaling.py) deploys it and the simulator
(synapscribe_ops.simulate.policy) models it, so both read the same fields and constants.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Target tracking on an Auto Scaling group: CloudWatch alarms on the 1-minute metric; the
#: scale-out alarm fires after 3 datapoints above the target, the scale-in alarm after 15 below
#: it (AWS creates these two alarms for every target tracking policy; "Target tracking scaling
#: policies for Amazon EC2 Auto Scaling", User Guide). Scale-in is further damped by the cooldown.
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
#: Scale in only when the metric is clearly below the target (hysteresis against flapping).
SCALE_IN_FRACTION = 0.9
METRIC_PERIOD_SECONDS = 60.0


class ScalingSettings(BaseModel):
    """Target tracking on AgentCore's requests in flight per instance (queued ones included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The in-flight requests per serving instance the policy keeps the fleet at (max_num_seqs
    #: slots per instance; below it, room for a burst while a new host starts).
    target_in_flight_per_instance: float = Field(gt=0, le=64)
    #: No further scale-out for this long after one (a new host needs host_startup_seconds).
    scale_out_cooldown_seconds: int = Field(ge=60, le=7200)
    #: No scale-in for this long after any scaling activity.
    scale_in_cooldown_seconds: int = Field(ge=60, le=7200)
