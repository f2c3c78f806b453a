"""The checks of `synapscribe preflight`, one function each: each takes its boto3 clients, never
raises on an AWS error, and says what to do; a failed check sets its trap's bit of the exit status."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from synapscribe.platform import PlatformConfig

from synapscribe_ops.preflight.settings import ENVIRONMENTS_KEY, DeploySettings

EXIT_OK = 0
#: Preflight itself failed (a bug, not a finding about the account): what Python exits with on an
#: uncaught exception, so a crash anywhere, even before `run`, reads the same.
EXIT_CRASH = 1
EXIT_USAGE = 2
#: The bit each failed check sets in the exit status (several may be set at once). Bits 1 and 2
#: are the crash and usage statuses, so the checks take 4 to 128: any sum of them is a multiple of
#: 4 (and at most 252), never 1 or 2. A shell also reports a process killed by signal N as 128+N;
#: preflight's statuses from 128 up come after its verdict line, a signal's without one.
EXIT_BITS = {
    "ami": 4,
    "quotas": 8,
    "zones": 16,
    "bootstrap": 32,
    "cors": 64,
    "alarm": 128,
}
#: Checks that share a trap's bit (by check name); every other check's trap is its own name.
TRAP_OF = {"spot-quota": "quotas", "lambda-concurrency": "quotas"}

#: Service Quotas: EC2 "All G and VT Spot Instance Requests", counted in vCPUs.
SPOT_G_VT_QUOTA_CODE = "L-3819A6DF"
#: The bootstrap version the synthesized templates demand: every stack's `CheckBootstrapVersion`
#: rule rejects versions 1-5 (aws-cdk-lib's DefaultStackSynthesizer, "Bootstrapping" in the CDK
#: developer guide). tests/cdk/test_preflight_settings.py checks it against a real synth.
MIN_BOOTSTRAP_VERSION = 6
TOOLKIT_STACK = "CDKToolkit"
#: Stack states in which the bootstrap stack's resources are in place (an update that rolled
#: back leaves the previous, complete version).
USABLE_STACK_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)
#: Names reserved for examples and tests (RFC 2606, RFC 6761): never a real web app's origin.
PLACEHOLDER_HOST = re.compile(
    r"(^|\.)(example|test|invalid|localhost)$|(^|\.)example\.(com|net|org)$", flags=re.IGNORECASE
)
#: Lambda keeps this many of an account's concurrent executions unreserved: reserving more fails
#: (Lambda API reference, PutFunctionConcurrency: "as long as you leave at least 100 simultaneous
#: executions unreserved for functions that aren't configured with a per-function limit").
UNRESERVED_MINIMUM = 100
#: The Data stack's output naming the alarm topic (tests/cdk/test_preflight_settings.py holds it
#: to the synthesized template).
ALARM_TOPIC_OUTPUT = "AlarmTopicArn"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str
    #: The zones check: the zones to deploy to (None when no two zones fit).
    zones: list[str] | None = None

    @property
    def exit_bit(self) -> int:
        return 0 if self.ok else EXIT_BITS[TRAP_OF.get(self.name, self.name)]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _cannot(name: str, what: str, exc: Exception) -> CheckResult:
    return CheckResult(name, False, f"cannot {what}: {exc}")


# ---------------------------------------------------------------------------------------------
# The checks. Each takes its boto3 clients, never raises on an AWS error, and says what to do.


def check_ami(ssm: Any, ec2: Any, platform: PlatformConfig, region: str, environment: str) -> CheckResult:
    name, parameter = "ami", platform.ami.channel(environment).current
    try:
        image_id = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except Exception as exc:
        if _error_code(exc) == "ParameterNotFound":
            return CheckResult(
                name,
                False,
                f"no image published at {parameter} in {region}: bake, verify and promote one first "
                f"(synapscribe ami bake, verify, promote --to {environment})",
            )
        return _cannot(name, f"read {parameter}", exc)
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception as exc:
        if _error_code(exc).startswith("InvalidAMIID"):
            images = []
        else:
            return _cannot(name, f"describe {image_id}", exc)
    if not images:
        return CheckResult(
            name,
            False,
            f"{parameter} names {image_id}, which does not exist in {region} (deregistered?): "
            f"promote a new image or roll back (synapscribe ami rollback {environment})",
        )
    state = images[0].get("State", "unknown")
    if state != "available":
        return CheckResult(name, False, f"{parameter} names {image_id}, which is {state}, not available")
    return CheckResult(name, True, f"{parameter} names {image_id} (available)")


def instance_vcpus(ec2: Any, instance_types: list[str]) -> dict[str, int]:
    """Default vCPUs of each type the region knows (types it does not know are left out)."""
    found: dict[str, int] = {}
    for page in ec2.get_paginator("describe_instance_types").paginate(
        Filters=[{"Name": "instance-type", "Values": instance_types}]
    ):
        for info in page["InstanceTypes"]:
            found[info["InstanceType"]] = int(info["VCpuInfo"]["DefaultVCpus"])
    return found


def spot_quota_vcpus(quotas: Any) -> float:
    """The applied quota, or AWS's default where the account never changed it."""
    try:
        return float(
            quotas.get_service_quota(ServiceCode="ec2", QuotaCode=SPOT_G_VT_QUOTA_CODE)["Quota"]["Value"]
        )
    except Exception as exc:
        if _error_code(exc) != "NoSuchResourceException":
            raise
    return float(
        quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=SPOT_G_VT_QUOTA_CODE)["Quota"][
            "Value"
        ]
    )


def check_spot_quota(quotas: Any, ec2: Any, settings: DeploySettings, region: str) -> CheckResult:
    name = "spot-quota"
    try:
        vcpus = instance_vcpus(ec2, settings.instance_types)
    except Exception as exc:
        return _cannot(name, "describe the instance types", exc)
    if not vcpus:
        return CheckResult(name, False, f"{region} offers none of {', '.join(settings.instance_types)}")
    largest = max(vcpus, key=lambda t: (vcpus[t], t))
    needed = settings.capacity.max * vcpus[largest]
    try:
        have = spot_quota_vcpus(quotas)
    except Exception as exc:
        return _cannot(name, f"read quota {SPOT_G_VT_QUOTA_CODE}", exc)
    how = (
        f"capacity.max {settings.capacity.max} × {vcpus[largest]} vCPUs ({largest}, the largest "
        f"allowed type) = {needed}"
    )
    if have < needed:
        return CheckResult(
            name,
            False,
            f"All G and VT Spot Instance Requests is {have:g} vCPUs in {region}; the fleet may need "
            f"{how}. Request more: aws service-quotas request-service-quota-increase --service-code ec2 "
            f"--quota-code {SPOT_G_VT_QUOTA_CODE} --desired-value {needed} --region {region}",
        )
    return CheckResult(name, True, f"{have:g} vCPUs cover {how}")


def zone_offerings(ec2: Any, instance_types: list[str]) -> dict[str, set[str]]:
    """Zone name -> which of the instance types it offers (EC2 DescribeInstanceTypeOfferings with
    LocationType availability-zone: one row per type and zone that offers it)."""
    offered: dict[str, set[str]] = {}
    for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": instance_types}]
    ):
        for offer in page["InstanceTypeOfferings"]:
            offered.setdefault(offer["Location"], set()).add(offer["InstanceType"])
    return offered


def available_zones(ec2: Any) -> set[str]:
    """The region's availability zones that are up (no local or Wavelength zones)."""
    return {
        z["ZoneName"]
        for z in ec2.describe_availability_zones(
            Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
        )["AvailabilityZones"]
        if z.get("State", "available") == "available"
    }


@dataclass(frozen=True)
class ZoneSurvey:
    """What the region offers of the environment's instance types, zone by zone."""

    region: str
    offered: dict[str, set[str]]  # available zone -> the types it offers

    @property
    def region_types(self) -> set[str]:
        """The types some zone of the region offers; a type none offers is the spot-quota
        check's business (and the fleet simply never launches it here)."""
        return set().union(*self.offered.values()) if self.offered else set()

    def missing(self, zone: str) -> list[str]:
        return sorted(self.region_types - self.offered.get(zone, set()))

    def fitting(self) -> list[str]:
        """The zones that offer every type the region offers, by name: a fleet there may launch
        any of its types in any zone, so spot capacity of one type in one zone is never the
        only choice."""
        return sorted(z for z in self.offered if not self.missing(z))


def pin_zones_hint(settings: DeploySettings, region: str, zones: list[str]) -> str:
    """The exact settings that make the Network stack use `zones` in `region`."""
    listed = ",".join(zones)
    setting = json.dumps({"availability_zones": {region: zones}})[1:-1]
    return (
        f"set {setting} in cdk.json ({ENVIRONMENTS_KEY}.{settings.name}), or deploy with "
        f"-c zones={listed} (and check with --zones {listed})"
    )


def _zone_problems(survey: ZoneSurvey, zones: list[str]) -> list[str]:
    problems = []
    for zone in zones:
        if zone not in survey.offered:
            problems.append(f"{zone} is not an available zone of {survey.region}")
        elif survey.missing(zone):
            problems.append(f"{zone} lacks {', '.join(survey.missing(zone))}")
    return problems


def _zones_verdict(
    survey: ZoneSurvey, settings: DeploySettings, zones: list[str], pinned: bool
) -> CheckResult:
    name, types = "zones", sorted(survey.region_types)
    problems = _zone_problems(survey, zones)
    good = zones if not problems else survey.fitting()[: len(zones)]
    if len(good) < 2:
        return CheckResult(
            name,
            False,
            "; ".join(problems) + f": fewer than two zones of {survey.region} offer all of "
            f"{', '.join(types)}: narrow instance_types in cdk.json or pick another region",
        )
    absent = sorted(set(settings.instance_types) - survey.region_types)
    note = f" ({', '.join(absent)}: offered in no zone of {survey.region})" if absent else ""
    if problems:
        hint = pin_zones_hint(settings, survey.region, good)
        return CheckResult(name, False, "; ".join(problems) + f"{note}: use {', '.join(good)}: {hint}", good)
    detail = f"{', '.join(zones)} offer all of {', '.join(types)}{note}"
    if not pinned:
        detail += (
            f"; these are the default letters, pin them: {pin_zones_hint(settings, survey.region, zones)}"
        )
    return CheckResult(name, True, detail, zones)


def check_zones(
    ec2: Any, settings: DeploySettings, region: str, zones: list[str] | None = None
) -> CheckResult:
    """`zones` (the `--zones` flag, as `-c zones=` on the deploy) over the configured ones."""
    name = "zones"
    zones = zones or settings.configured_zones(region)
    pinned = zones is not None
    try:
        up = available_zones(ec2)
        offered = zone_offerings(ec2, settings.instance_types)
    except Exception as exc:
        return _cannot(name, f"describe the zones of {region}", exc)
    survey = ZoneSurvey(region, {z: offered.get(z, set()) for z in up})
    if not survey.region_types:
        return CheckResult(
            name,
            False,
            f"no zone of {region} offers {', '.join(settings.instance_types)}: pick another region",
        )
    return _zones_verdict(survey, settings, zones or settings.zones_in(region), pinned)


def check_bootstrap(cloudformation: Any, region: str, stack_name: str = TOOLKIT_STACK) -> CheckResult:
    name = "bootstrap"
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        if _error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return CheckResult(
                name, False, f"no {stack_name} stack in {region}: bootstrap first (npx cdk bootstrap)"
            )
        return _cannot(name, f"describe {stack_name}", exc)
    status = stack.get("StackStatus", "unknown")
    if status not in USABLE_STACK_STATES:
        return CheckResult(name, False, f"{stack_name} is {status}: fix or delete it, then bootstrap again")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    try:
        version = int(outputs["BootstrapVersion"])
    except (KeyError, ValueError):
        return CheckResult(name, False, f"{stack_name} has no BootstrapVersion output: bootstrap again")
    if version < MIN_BOOTSTRAP_VERSION:
        return CheckResult(
            name,
            False,
            f"{stack_name} is bootstrap version {version}; the stacks need {MIN_BOOTSTRAP_VERSION} or "
            "later: run npx cdk bootstrap again",
        )
    return CheckResult(name, True, f"{stack_name} {status}, bootstrap version {version}")


def check_cors(settings: DeploySettings) -> CheckResult:
    name, problems = "cors", []
    for origin in settings.cors_allowed_origins:
        host = urlsplit(origin).hostname or ""
        if origin != "*" and PLACEHOLDER_HOST.search(host) and host != "localhost":
            problems.append(f"{origin} is a placeholder (a name reserved for examples)")
        elif settings.production and (origin == "*" or host == "localhost"):
            problems.append(f"{origin} lets any site (or only a developer's machine) upload in production")
    if problems:
        where = f"cors_allowed_origins of {ENVIRONMENTS_KEY}.{settings.name} in cdk.json"
        return CheckResult(name, False, f"{'; '.join(problems)}: set your web app's origin in {where}")
    return CheckResult(name, True, ", ".join(settings.cors_allowed_origins))


def check_lambda_concurrency(lambda_client: Any, settings: DeploySettings) -> CheckResult:
    name = "lambda-concurrency"
    try:
        limit = int(lambda_client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"])
    except Exception as exc:
        return _cannot(name, "read the account's Lambda concurrency limit", exc)
    reserved = settings.reserved_total
    need = reserved + UNRESERVED_MINIMUM
    if limit < need:
        return CheckResult(
            name,
            False,
            f"the account's Lambda concurrency limit is {limit}; {settings.name} reserves {reserved} "
            f"and Lambda keeps {UNRESERVED_MINIMUM} unreserved, so it needs {need}: ask for more "
            "(aws service-quotas request-service-quota-increase --service-code lambda "
            f"--quota-code L-B99A9384 --desired-value {need}) or lower reserved_concurrency in cdk.json",
        )
    return CheckResult(name, True, f"limit {limit}, {reserved} reserved, {limit - reserved} unreserved")


def data_stack_name(settings: DeploySettings) -> str:
    """The environment's Data stack, which holds the alarm topic (the CDK app's naming)."""
    return f"SynapScribe-{settings.name}-Data"


def alarm_topic_arn(cloudformation: Any, stack_name: str) -> str | None:
    """The deployed alarm topic (the Data stack's `AlarmTopicArn` output); None: not deployed."""
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        if _error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    return outputs.get(ALARM_TOPIC_OUTPUT) or None


def confirmed_subscriptions(sns: Any, topic_arn: str) -> tuple[list[str], int]:
    """The endpoints of the topic's confirmed subscriptions, and how many await confirmation (an
    unconfirmed subscription's SubscriptionArn is `PendingConfirmation`)."""
    confirmed, pending = [], 0
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for subscription in page["Subscriptions"]:
            if str(subscription.get("SubscriptionArn", "")).startswith("arn:"):
                confirmed.append(str(subscription.get("Endpoint", "?")))
            else:
                pending += 1
    return confirmed, pending


def _alarm_address_problem(settings: DeploySettings) -> str | None:
    where = f"alarm_email of {ENVIRONMENTS_KEY}.{settings.name} in cdk.json"
    address = settings.alarm_email
    if address is None:
        return f"no alarm address: nobody hears the alarms or the budget; set {where}"
    if PLACEHOLDER_HOST.search(address.rpartition("@")[2]):
        return (
            f"{address} is a placeholder (a name reserved for examples): set your team's address in {where}"
        )
    return None


def check_alarm(cloudformation: Any, sns: Any, settings: DeploySettings) -> CheckResult:
    """A production environment fails unless a confirmed subscription hears its alarm topic;
    another passes, with what is missing in its line."""
    name = "alarm"
    ok, message = _alarm_verdict(cloudformation, sns, settings)
    if not ok and not settings.production:
        return CheckResult(name, True, f"warning (not production): {message}")
    return CheckResult(name, ok, message)


def _alarm_verdict(cloudformation: Any, sns: Any, settings: DeploySettings) -> tuple[bool, str]:
    problem = _alarm_address_problem(settings)
    if problem:
        return False, problem
    stack_name = data_stack_name(settings)
    try:
        topic = alarm_topic_arn(cloudformation, stack_name)
    except Exception as exc:
        return False, f"cannot describe {stack_name}: {exc}"
    if topic is None:
        return False, (
            f"{stack_name} is not deployed yet, so nobody can confirm its alarm topic: deploy, have "
            f"{settings.alarm_email} confirm the mail from AWS Notifications, then run preflight again"
        )
    try:
        confirmed, pending = confirmed_subscriptions(sns, topic)
    except Exception as exc:
        return False, f"cannot list the subscriptions of {topic}: {exc}"
    if not confirmed:
        waiting = f" ({pending} awaiting confirmation)" if pending else ""
        return False, (
            f"{topic} has no confirmed subscription{waiting}: {settings.alarm_email} must open the link "
            "in the mail 'AWS Notification - Subscription Confirmation' (or subscribe again: "
            f"aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint "
            f"{settings.alarm_email})"
        )
    return True, f"{topic} is heard by {', '.join(sorted(confirmed))}"
