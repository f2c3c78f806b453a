"""`synapscribe preflight`: each check passes on a ready account and fails, with its own exit bit
and a message that says what to do, on the trap it exists for.

moto plays EC2 (images, zones, instance types and their zone offerings), SSM and CloudFormation.
moto's Service Quotas knows only the `vpc` service, so the EC2 spot quota is answered by botocore's
Stubber with the response shape of AWS's API reference (GetServiceQuota /
GetAWSDefaultServiceQuota: `Quota.Value`, a double, in vCPUs for L-3819A6DF), and so is Lambda's
GetAccountSettings (`AccountLimit.ConcurrentExecutions`); the same goes for
image and stack states moto cannot produce (an image `pending`, a stack `ROLLBACK_COMPLETE`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from synapscribe.platform import load_platform
from synapscribe_ops import preflight
from synapscribe_ops.preflight import (
    EXIT_BITS,
    MIN_BOOTSTRAP_VERSION,
    SPOT_G_VT_QUOTA_CODE,
    DeploySettings,
    check_alarm,
    check_ami,
    check_bootstrap,
    check_cors,
    check_lambda_concurrency,
    check_spot_quota,
    check_zones,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
PARAMETER = load_platform().ami.channel("dev").current


def settings(**changes: Any) -> DeploySettings:
    """dev from the repository's cdk.json, with `changes` on top."""
    base = load_settings(ROOT / "cdk.json", "dev").model_dump()
    return DeploySettings(**{**base, **changes})


def quotas_answering(value: float | None, default: float | None = None) -> Any:
    """A Service Quotas client whose EC2 spot G/VT quota is `value` (None: never changed, so
    GetServiceQuota answers NoSuchResourceException and the default is `default`)."""
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    params = {"ServiceCode": "ec2", "QuotaCode": SPOT_G_VT_QUOTA_CODE}
    if value is None:
        stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=params)
        stub.add_response(
            "get_aws_default_service_quota",
            {"Quota": {"ServiceCode": "ec2", "QuotaCode": SPOT_G_VT_QUOTA_CODE, "Value": default}},
            params,
        )
    else:
        stub.add_response(
            "get_service_quota",
            {
                "Quota": {
                    "ServiceCode": "ec2",
                    "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                    "QuotaCode": SPOT_G_VT_QUOTA_CODE,
                    "QuotaName": "All G and VT Spot Instance Requests",
                    "Value": value,
                    "Unit": "None",
                    "Adjustable": True,
                    "GlobalQuota": False,
                }
            },
            params,
        )
    stub.activate()
    return client


def toolkit_template(version: int) -> str:
    # What `cdk bootstrap` leaves behind, as far as preflight looks: the BootstrapVersion output.
    return json.dumps(
        {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"BootstrapVersion": {"Value": str(version)}},
        }
    )


def lambda_answering(limit: int) -> Any:
    """A Lambda client whose account concurrency limit is `limit` (GetAccountSettings' shape in
    the Lambda API reference)."""
    client = boto3.client("lambda", region_name=REGION)
    stub = Stubber(client)
    stub.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": limit,
            },
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
        },
        {},
    )
    stub.activate()
    return client


@pytest.fixture
def account(aws_env: None) -> Iterator[dict[str, Any]]:
    """A ready account in eu-west-1: a baked image published, bootstrapped, quota raised."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        image = ec2.register_image(
            Name="synapscribe-test",
            RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 150}}],
        )["ImageId"]
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name=PARAMETER, Type="String", DataType="aws:ec2:image", Value=image)
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(StackName="CDKToolkit", TemplateBody=toolkit_template(21))
        yield {
            "sts": boto3.client("sts", region_name=REGION),
            "ec2": ec2,
            "ssm": ssm,
            "cloudformation": cfn,
            "service-quotas": quotas_answering(64),
            "lambda": lambda_answering(1000),
            "sns": boto3.client("sns", region_name=REGION),
            "image": image,
        }


# ---------------------------------------------------------------------------------------------
# ami


def test_ami_passes_when_the_parameter_names_an_available_image(account: dict[str, Any]) -> None:
    result = check_ami(account["ssm"], account["ec2"], load_platform(), REGION, "dev")
    assert result.ok and account["image"] in result.message


def test_ami_fails_without_a_published_image(account: dict[str, Any]) -> None:
    account["ssm"].delete_parameter(Name=PARAMETER)
    result = check_ami(account["ssm"], account["ec2"], load_platform(), REGION, "dev")
    assert not result.ok and f"no image published at {PARAMETER}" in result.message
    assert (
        "synapscribe ami bake, verify, promote --to dev" in result.message
        and result.exit_bit == EXIT_BITS["ami"]
    )


def test_ami_fails_when_the_image_is_gone(account: dict[str, Any]) -> None:
    account["ec2"].deregister_image(ImageId=account["image"])
    result = check_ami(account["ssm"], account["ec2"], load_platform(), REGION, "dev")
    assert not result.ok and "does not exist" in result.message


def test_ami_fails_when_the_image_is_not_available(account: dict[str, Any]) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        # DescribeImages' documented shape; a freshly created image is `pending` for minutes.
        stub.add_response(
            "describe_images",
            {"Images": [{"ImageId": account["image"], "State": "pending"}]},
            {"ImageIds": [account["image"]]},
        )
        result = check_ami(account["ssm"], ec2, load_platform(), REGION, "dev")
    assert not result.ok and "pending, not available" in result.message
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_images", "InvalidAMIID.NotFound")
        assert "does not exist" in check_ami(account["ssm"], ec2, load_platform(), REGION, "dev").message


def test_ami_says_when_it_cannot_look(account: dict[str, Any]) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "AccessDeniedException", "not authorized")
        result = check_ami(ssm, account["ec2"], load_platform(), REGION, "dev")
    assert not result.ok and result.message.startswith(f"cannot read {PARAMETER}")


# ---------------------------------------------------------------------------------------------
# spot-quota


def test_spot_quota_covers_max_capacity_of_the_largest_type(account: dict[str, Any]) -> None:
    # dev: capacity.max 2, the largest allowed type is a 4xlarge (16 vCPUs, from EC2): 32 vCPUs.
    result = check_spot_quota(quotas_answering(32), account["ec2"], settings(), REGION)
    assert result.ok, result.message
    assert "= 32" in result.message and "16 vCPUs" in result.message


def test_spot_quota_fails_below_the_need_and_says_how_to_ask(account: dict[str, Any]) -> None:
    result = check_spot_quota(quotas_answering(31), account["ec2"], settings(), REGION)
    assert not result.ok and result.exit_bit == EXIT_BITS["quotas"]
    assert f"--quota-code {SPOT_G_VT_QUOTA_CODE} --desired-value 32 --region {REGION}" in result.message


def test_spot_quota_never_changed_reads_the_default(account: dict[str, Any]) -> None:
    # New accounts often start at 0 spot G and VT vCPUs.
    result = check_spot_quota(quotas_answering(None, default=0), account["ec2"], settings(), REGION)
    assert not result.ok and "is 0 vCPUs" in result.message
    fits = check_spot_quota(quotas_answering(None, default=64), account["ec2"], settings(), REGION)
    assert fits.ok


def test_spot_quota_counts_the_types_of_the_environment(account: dict[str, Any]) -> None:
    one = settings(instance_types=["g5.xlarge"], capacity={"max": 3})
    result = check_spot_quota(quotas_answering(12), account["ec2"], one, REGION)
    assert result.ok and "3 × 4 vCPUs (g5.xlarge" in result.message


# ---------------------------------------------------------------------------------------------
# zones


def test_zones_pass_where_each_offers_the_types(account: dict[str, Any]) -> None:
    result = check_zones(account["ec2"], settings(), REGION)
    assert result.ok and "eu-west-1a" in result.message and "eu-west-1b" in result.message
    assert result.zones == ["eu-west-1a", "eu-west-1b"]


def test_default_zones_pass_and_say_how_to_pin_them(aws_env: None) -> None:
    """Unset, the default letters are used; when they fit, preflight prints the settings that pin
    them (moto's eu-west-1 offers the g5 types in every zone and g6 in none)."""
    with mock_aws():
        result = check_zones(boto3.client("ec2", region_name=REGION), settings(), REGION)
    assert result.ok, result.message
    assert "the default letters, pin them" in result.message
    assert '"availability_zones": {"eu-west-1": ["eu-west-1a", "eu-west-1b"]}' in result.message
    assert "-c zones=eu-west-1a,eu-west-1b" in result.message
    # A type no zone of the region offers is said, not held against the zones.
    assert "g6.2xlarge, g6.4xlarge, g6.xlarge: offered in no zone of eu-west-1" in result.message


def test_zones_fail_where_a_zone_offers_none_and_suggest_ones_that_do(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        # us-east-1e offers no g5/g6 (moto's copy of AWS's offerings, as in many real accounts).
        result = check_zones(ec2, settings(availability_zones=["us-east-1a", "us-east-1e"]), "us-east-1")
    assert not result.ok and result.exit_bit == EXIT_BITS["zones"]
    assert "us-east-1e lacks g5.2xlarge" in result.message
    assert '"availability_zones": {"us-east-1": ["us-east-1a", "us-east-1b"]}' in result.message
    assert result.zones == ["us-east-1a", "us-east-1b"]


def test_a_zone_missing_some_of_the_types_fails_and_the_printed_setting_fits(aws_env: None) -> None:
    """The zones must offer ALL the types the region has: moto's us-west-2d offers g6 but no g5.
    The setting preflight prints, put into cdk.json as printed, then passes."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        pinned = settings(availability_zones={"us-west-2": ["us-west-2a", "us-west-2d"]})
        result = check_zones(ec2, pinned, "us-west-2")
        assert not result.ok
        assert "us-west-2d lacks g5.2xlarge, g5.4xlarge, g5.xlarge" in result.message
        printed = json.loads("{" + result.message.split("set ", 1)[1].split(" in cdk.json")[0] + "}")
        assert printed == {"availability_zones": {"us-west-2": ["us-west-2a", "us-west-2b"]}}
        fixed = check_zones(ec2, settings(**printed), "us-west-2")
        assert fixed.ok and "pin them" not in fixed.message, fixed.message
        # The same zones given as -c zones= would give them (the --zones flag).
        assert check_zones(ec2, pinned, "us-west-2", ["us-west-2b", "us-west-2c"]).ok


def test_zones_of_another_region_in_the_map_leave_the_default(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        other = settings(availability_zones={"us-east-1": ["us-east-1a", "us-east-1b"]}, max_azs=4)
        result = check_zones(ec2, other, "us-west-2")
    assert not result.ok and "us-west-2d lacks" in result.message
    assert '"availability_zones": {"us-west-2": ["us-west-2a", "us-west-2b", "us-west-2c"]}' in result.message


def test_zones_fail_when_the_default_letters_do_not_exist(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        result = check_zones(ec2, settings(max_azs=4), "eu-west-1")
    assert not result.ok and "eu-west-1d is not an available zone" in result.message


def test_zones_fail_in_a_region_without_the_types(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-1")
        result = check_zones(ec2, settings(), "us-west-1")
    assert not result.ok and "pick another region" in result.message and result.zones is None


def test_missing_zones_are_replaced_by_fitting_ones(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="ap-northeast-1")
        # moto's ap-northeast-1 has no 1b, and its 1d offers none of the types: 1a and 1c are left.
        result = check_zones(ec2, settings(max_azs=3), "ap-northeast-1")
    assert not result.ok and "ap-northeast-1b is not an available zone" in result.message
    assert result.zones == ["ap-northeast-1a", "ap-northeast-1c"]
    assert "-c zones=ap-northeast-1a,ap-northeast-1c" in result.message


def test_fewer_than_two_fitting_zones_say_so(aws_env: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        # DescribeAvailabilityZones and DescribeInstanceTypeOfferings in their documented shapes:
        # two zones, only one of which offers the type.
        stub.add_response(
            "describe_availability_zones",
            {
                "AvailabilityZones": [
                    {"ZoneName": f"{REGION}{z}", "State": "available", "ZoneType": "availability-zone"}
                    for z in "ab"
                ]
            },
        )
        stub.add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [
                    {
                        "InstanceType": "g5.xlarge",
                        "LocationType": "availability-zone",
                        "Location": f"{REGION}a",
                    }
                ]
            },
        )
        result = check_zones(ec2, settings(instance_types=["g5.xlarge"]), REGION)
    assert not result.ok and result.zones is None
    assert "eu-west-1b lacks g5.xlarge" in result.message
    assert "fewer than two zones of eu-west-1 offer all of g5.xlarge" in result.message


# ---------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_passes_when_recent(account: dict[str, Any]) -> None:
    result = check_bootstrap(account["cloudformation"], REGION)
    assert result.ok and "bootstrap version 21" in result.message


def test_bootstrap_fails_when_missing(account: dict[str, Any]) -> None:
    account["cloudformation"].delete_stack(StackName="CDKToolkit")
    result = check_bootstrap(account["cloudformation"], REGION)
    assert not result.ok and "npx cdk bootstrap" in result.message
    assert result.exit_bit == EXIT_BITS["bootstrap"]


def test_bootstrap_fails_when_too_old(account: dict[str, Any]) -> None:
    account["cloudformation"].create_stack(
        StackName="OldToolkit", TemplateBody=toolkit_template(MIN_BOOTSTRAP_VERSION - 1)
    )
    result = check_bootstrap(account["cloudformation"], REGION, "OldToolkit")
    assert not result.ok and f"need {MIN_BOOTSTRAP_VERSION} or later" in result.message


def test_bootstrap_fails_when_the_stack_rolled_back(account: dict[str, Any]) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    with Stubber(cfn) as stub:
        # DescribeStacks' documented shape: a first bootstrap that failed stays ROLLBACK_COMPLETE.
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "CDKToolkit",
                        "CreationTime": "2026-12-01T00:00:00Z",
                        "StackStatus": "ROLLBACK_COMPLETE",
                    }
                ]
            },
        )
        result = check_bootstrap(cfn, REGION)
    assert not result.ok and "ROLLBACK_COMPLETE" in result.message


# ---------------------------------------------------------------------------------------------
# cors


def test_cors_refuses_the_shipped_production_placeholder() -> None:
    prod = load_settings(ROOT / "cdk.json", "prod")
    result = check_cors(prod)
    assert not result.ok and result.exit_bit == EXIT_BITS["cors"]
    assert "is a placeholder" in result.message and "cors_allowed_origins" in result.message


@pytest.mark.parametrize(
    ("origins", "removal", "ok"),
    [
        (["https://app.synapscribe.edu"], "retain", True),
        (["https://learn.uni-example.de", "https://app.synapscribe.edu"], "retain", True),
        (["*"], "destroy", True),
        (["http://localhost:3000"], "destroy", True),
        (["*"], "retain", False),
        (["http://localhost:3000"], "retain", False),
        (["https://example.com"], "destroy", False),
        (["https://www.example.org"], "retain", False),
        (["https://app.test"], "retain", False),
        (["https://app.synapscribe.edu", "https://app.invalid"], "retain", False),
    ],
)
def test_cors_origins(origins: list[str], removal: str, ok: bool) -> None:
    assert check_cors(settings(cors_allowed_origins=origins, removal=removal)).ok is ok


# ---------------------------------------------------------------------------------------------
# lambda-concurrency


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_lambda_concurrency_counts_every_reserved_function(env: str) -> None:
    s = load_settings(ROOT / "cdk.json", env)
    r = s.reserved_concurrency
    # validation + WebSocket handler + the sweeper's 1
    assert s.reserved_total == r.validation + r.websocket_handler + 1
    need = s.reserved_total + preflight.UNRESERVED_MINIMUM
    assert check_lambda_concurrency(lambda_answering(need), s).ok
    short = check_lambda_concurrency(lambda_answering(need - 1), s)
    assert not short.ok and short.exit_bit == EXIT_BITS["quotas"]
    assert f"needs {need}" in short.message and "L-B99A9384" in short.message


def test_lambda_concurrency_fails_at_a_new_accounts_limit_of_10() -> None:
    result = check_lambda_concurrency(lambda_answering(10), settings())
    assert not result.ok and "limit is 10" in result.message and "reserved_concurrency" in result.message


def test_lambda_concurrency_says_when_it_cannot_look(aws_env: None) -> None:
    client = boto3.client("lambda", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("get_account_settings", "AccessDeniedException", "not allowed")
        result = check_lambda_concurrency(client, settings())
    assert not result.ok and "cannot read the account's Lambda concurrency limit" in result.message


# ---------------------------------------------------------------------------------------------
# alarm

ADDRESS = "oncall@synapscribe-team.org"


def deployed_topic(account: dict[str, Any], env: str = "prod") -> str:
    """The environment's Data stack deployed (on moto) with its alarm topic as `AlarmTopicArn`."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"AlarmTopicArn": {"Value": {"Ref": "Topic"}}},
    }
    cfn = account["cloudformation"]
    cfn.create_stack(StackName=f"SynapScribe-{env}-Data", TemplateBody=json.dumps(template))
    outputs = cfn.describe_stacks(StackName=f"SynapScribe-{env}-Data")["Stacks"][0]["Outputs"]
    return str(outputs[0]["OutputValue"])


def prod(**changes: Any) -> DeploySettings:
    base = load_settings(ROOT / "cdk.json", "prod").model_dump()
    return DeploySettings(**{**base, "alarm_email": ADDRESS, **changes})


def sns_listing(topic: str, subscriptions: list[dict[str, str]]) -> Any:
    """An SNS client whose ListSubscriptionsByTopic answers `subscriptions` (moto confirms every
    subscription at once, so an unconfirmed one comes from the API reference's shape)."""
    client = boto3.client("sns", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("list_subscriptions_by_topic", {"Subscriptions": subscriptions}, {"TopicArn": topic})
    stub.activate()
    return client


def test_alarm_passes_when_a_confirmed_subscription_hears_the_topic(account: dict[str, Any]) -> None:
    topic = deployed_topic(account)
    account["sns"].subscribe(TopicArn=topic, Protocol="email", Endpoint=ADDRESS)
    result = check_alarm(account["cloudformation"], account["sns"], prod())
    assert result.ok and f"{topic} is heard by {ADDRESS}" == result.message


def test_alarm_fails_in_production_while_the_mail_is_unconfirmed(account: dict[str, Any]) -> None:
    topic = deployed_topic(account)
    pending = {
        "SubscriptionArn": "PendingConfirmation",
        "Owner": "123456789012",
        "Protocol": "email",
        "Endpoint": ADDRESS,
        "TopicArn": topic,
    }
    result = check_alarm(account["cloudformation"], sns_listing(topic, [pending]), prod())
    assert not result.ok and result.exit_bit == EXIT_BITS["alarm"] == 128
    assert "no confirmed subscription (1 awaiting confirmation)" in result.message
    assert "Subscription Confirmation" in result.message and "aws sns subscribe" in result.message


def test_alarm_fails_in_production_when_nobody_subscribed(account: dict[str, Any]) -> None:
    topic = deployed_topic(account)  # moto: a topic without subscriptions
    result = check_alarm(account["cloudformation"], account["sns"], prod())
    assert not result.ok and f"{topic} has no confirmed subscription:" in result.message


def test_alarm_fails_in_production_before_the_first_deploy(account: dict[str, Any]) -> None:
    result = check_alarm(account["cloudformation"], account["sns"], prod())
    assert not result.ok and "SynapScribe-prod-Data is not deployed yet" in result.message
    assert ADDRESS in result.message


@pytest.mark.parametrize(
    ("address", "needle"),
    [(None, "no alarm address"), ("ops@synapscribe.example", "is a placeholder")],
)
def test_alarm_fails_in_production_without_a_real_address(
    account: dict[str, Any], address: str | None, needle: str
) -> None:
    topic = deployed_topic(account)
    account["sns"].subscribe(TopicArn=topic, Protocol="email", Endpoint="someone@else.org")
    result = check_alarm(account["cloudformation"], account["sns"], prod(alarm_email=address))
    assert not result.ok and needle in result.message and "alarm_email" in result.message


def test_alarm_only_warns_outside_production(account: dict[str, Any]) -> None:
    deployed_topic(account, "dev")
    result = check_alarm(account["cloudformation"], account["sns"], settings(alarm_email=ADDRESS))
    assert result.ok and result.exit_bit == 0
    assert (
        result.message.startswith("warning (not production):")
        and "no confirmed subscription" in result.message
    )


def test_the_repositorys_prod_ships_a_placeholder_address() -> None:
    """As its CORS origin: the deploy needs the team's own, and preflight says so."""
    assert preflight.PLACEHOLDER_HOST.search(
        str(load_settings(ROOT / "cdk.json", "prod").alarm_email).split("@")[1]
    )


# ---------------------------------------------------------------------------------------------
# The command


def parse(*argv: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    preflight.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_ready_account_exits_0(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.run(parse("--region", REGION, "--env", "dev"), account) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == 7 and "account 123456789012, eu-west-1: ready to deploy" in out


def test_each_failure_sets_its_own_bit(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    account["ssm"].delete_parameter(Name=PARAMETER)
    account["service-quotas"] = quotas_answering(8)
    account["lambda"] = lambda_answering(10)
    status = preflight.run(parse("--region", REGION, "--env", "prod", "--json"), account)
    # prod also ships a placeholder origin and alarm address; its zones (max_azs 3) exist in eu-west-1.
    failed = ["ami", "spot-quota", "cors", "lambda-concurrency", "alarm"]
    assert status == sum(EXIT_BITS[trap] for trap in {"ami", "quotas", "cors", "alarm"})
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit"] == status
    assert [c["name"] for c in doc["checks"] if not c["ok"]] == failed


def test_exit_bits_are_distinct_and_never_read_as_usage_or_crash() -> None:
    bits = list(EXIT_BITS.values())
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
    assert sum(bits) <= 255  # an exit status is one byte
    assert EXIT_BITS["alarm"] == 128
    # The two Service Quotas checks share one bit (an exit status has room for six).
    assert preflight.TRAP_OF == {"spot-quota": "quotas", "lambda-concurrency": "quotas"}
    # Every combination of failed checks is a multiple of 4: never 1 (crash) nor 2 (usage).
    for status in range(1, 256):
        if status & ~sum(bits) == 0:
            assert status & (preflight.EXIT_CRASH | preflight.EXIT_USAGE) == 0
    assert (preflight.EXIT_CRASH, preflight.EXIT_USAGE) == (1, 2)
    for name, bit in EXIT_BITS.items():
        assert f"{bit} {name}" in preflight.EPILOG
    assert "1 preflight itself failed" in preflight.EPILOG and "2 bad flags" in preflight.EPILOG


def test_a_crash_exits_1_with_a_traceback_and_no_verdict(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def buggy(settings: Any) -> Any:
        raise ZeroDivisionError("a bug in a check")

    monkeypatch.setattr(preflight, "check_cors", buggy)
    status = preflight.run(parse("--region", REGION, "--env", "dev"), account)
    assert status == preflight.EXIT_CRASH == 1
    assert not any(status & bit for bit in EXIT_BITS.values())
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "ZeroDivisionError: a bug in a check" in captured.err
    assert "not a finding about the account" in captured.err
    assert "ready to deploy" not in captured.out and "preflight dev" not in captured.out


def test_the_help_lists_every_status(capsys: pytest.CaptureFixture[str]) -> None:
    from synapscribe.cli import main

    with pytest.raises(SystemExit) as done:
        main(["preflight", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as `synapscribe preflight --help` prints it
    for name, bit in EXIT_BITS.items():
        assert f"{bit} {name}" in text
    assert "1 preflight itself failed" in text and "2 bad flags" in text


def test_zones_flag_checks_the_zones_a_deploy_would_get(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status = preflight.run(parse("--region", REGION, "--zones", "eu-west-1c,eu-west-1b", "--json"), account)
    assert status == 0
    zones = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "zones")
    assert zones["zones"] == ["eu-west-1c", "eu-west-1b"] and "pin them" not in zones["message"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--region", "eu-west-1", "--zones", "eu-west-1a"], "--zones"),
        (["--region", "eu-west-1", "--zones", "us-east-1a,us-east-1b"], "zones of eu-west-1"),
        (["--region", "eu-west-1", "--zones", "eu-west-1a,eu-west-1a"], "two or more distinct"),
        (["--region", "eu-west-1", "--env", "staging"], "no environment 'staging'"),
        (["--region", "Europe"], "--region"),
        (["--region", "eu-west-1", "--cdk-json", "/nonexistent/cdk.json"], "cannot read"),
    ],
)
def test_bad_flags_exit_2_and_touch_nothing(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    untouchable: dict[str, Any] = {}  # any AWS call would raise KeyError
    assert preflight.run(parse(*argv), untouchable) == 2
    assert needle in capsys.readouterr().err


def test_without_credentials_it_says_so_once(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sts = boto3.client("sts", region_name=REGION)
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId", "The security token is invalid")
        status = preflight.run(parse("--region", REGION), {**account, "sts": sts})
    assert status == 2
    captured = capsys.readouterr()
    assert "cannot ask AWS who you are" in captured.err and "FAIL" not in captured.out
