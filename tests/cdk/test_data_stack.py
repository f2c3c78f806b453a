"""The Data stack: bucket and tables carry every property the design names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match
from synapscribe import keys
from synapscribe.host_registry import ALL_TABLE_KEYS as TABLE_KEYS
from synapscribe.platform import load_platform
from synapscribe.store import SWEEP_ATTRIBUTE, TTL_ATTRIBUTE
from synapscribe_cdk.application import default_context
from synapscribe_local.provision import sweep_index
from synth_support import Synthesized, resources_of


def _main_bucket(template: dict[str, Any]) -> dict[str, Any]:
    buckets = [
        b["Properties"]
        for b in resources_of(template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    ]
    assert len(buckets) == 1, "exactly one bucket logs to the access-log bucket"
    return buckets[0]


def test_bucket_is_private_encrypted_and_logged(synth: Synthesized) -> None:
    bucket = _main_bucket(synth.templates["data"])
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["LoggingConfiguration"]["LogFilePrefix"]


def test_every_bucket_denies_plain_http(synth: Synthesized) -> None:
    template = synth.template("data")
    buckets = resources_of(synth.templates["data"], "AWS::S3::Bucket")
    policies = resources_of(synth.templates["data"], "AWS::S3::BucketPolicy")
    assert len(policies) == len(buckets) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
    template.resource_count_is("AWS::S3::BucketPolicy", 2)


def test_lifecycle_expires_ephemeral_prefixes_and_aborts_multipart(synth: Synthesized) -> None:
    platform = load_platform()
    rules = _main_bucket(synth.templates["data"])["LifecycleConfiguration"]["Rules"]
    by_prefix = {r.get("Prefix"): r for r in rules}
    for prefix in (platform.storage.prefixes.queries, platform.storage.prefixes.responses):
        assert by_prefix[prefix]["ExpirationInDays"] == platform.storage.ephemeral_days
        assert by_prefix[prefix]["Status"] == "Enabled"
    # Stored data ends too: lectures and what was made from them, after the retention.
    for prefix in (
        platform.storage.prefixes.lectures,
        platform.storage.prefixes.transcripts,
        platform.storage.prefixes.segments,
    ):
        assert by_prefix[prefix]["ExpirationInDays"] == platform.storage.retention_days
        assert by_prefix[prefix]["Status"] == "Enabled"
    assert platform.storage.retention_days > platform.storage.ephemeral_days
    assert any(
        r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 1 and "Prefix" not in r
        for r in rules
    )
    # Every upload is tagged pending (its POST policy requires it) until validated: a day at most.
    (pending,) = [r for r in rules if r.get("TagFilters")]
    assert pending["TagFilters"] == [{"Key": keys.STATE_TAG, "Value": keys.PENDING}]
    assert pending["ExpirationInDays"] == 1 and pending["Status"] == "Enabled" and "Prefix" not in pending


def test_cors_allows_browser_presigned_post(synth: Synthesized) -> None:
    cors = _main_bucket(synth.templates["data"])["CorsConfiguration"]["CorsRules"]
    # The configured origins, then the student page's (tests/cdk/test_page_stack.py).
    assert len(cors) == 2
    assert "POST" in cors[0]["AllowedMethods"]
    assert cors[0]["AllowedOrigins"] == synth.platform.config.cors_allowed_origins
    assert cors[0]["AllowedHeaders"] == ["*"]


def test_tables_match_the_store(synth: Synthesized) -> None:
    template = synth.template("data")
    template.resource_count_is("AWS::DynamoDB::Table", len(TABLE_KEYS))
    for field, key in TABLE_KEYS.items():
        attributes = [{"AttributeName": key, "AttributeType": "S"}]
        if sweep_index(field) is not None:
            attributes.append({"AttributeName": SWEEP_ATTRIBUTE, "AttributeType": "S"})
        template.has_resource_properties(
            "AWS::DynamoDB::Table",
            {
                "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                "AttributeDefinitions": attributes,
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        )


def test_the_sweep_index_is_the_one_the_local_stack_makes(synth: Synthesized) -> None:
    """The sweeper's sparse index (store.SWEEP_INDEXES) in the template is exactly what
    provision.py creates for the local stack and the moto tests, on the same tables."""
    tables = resources_of(synth.templates["data"], "AWS::DynamoDB::Table").values()
    by_key = {t["Properties"]["KeySchema"][0]["AttributeName"]: t["Properties"] for t in tables}
    indexed = set()
    for field, key in TABLE_KEYS.items():
        expected = sweep_index(field)
        found = by_key[key].get("GlobalSecondaryIndexes")
        assert found == ([expected] if expected is not None else None), field
        if expected is not None:
            indexed.add(field)
    assert indexed == {"connections_table", "lectures_table"}


def test_dev_tables_are_deletable(synth: Synthesized) -> None:
    assert synth.platform.config.removal == "destroy"
    for table in resources_of(synth.templates["data"], "AWS::DynamoDB::Table").values():
        assert table["DeletionPolicy"] == "Delete"


def test_dev_buckets_empty_themselves_on_destroy(synth: Synthesized) -> None:
    """`cdk destroy` of dev removes the buckets, which CloudFormation can only do once they are empty."""
    for name in ("data", "network"):
        template = synth.templates[name]
        buckets = resources_of(template, "AWS::S3::Bucket")
        cleaners = resources_of(template, "Custom::S3AutoDeleteObjects").values()
        emptied = {json.dumps(c["Properties"]["BucketName"]) for c in cleaners}
        assert emptied == {json.dumps({"Ref": b}) for b in buckets}, name
        assert all(b["DeletionPolicy"] == "Delete" for b in buckets.values())


def test_throttle_alarm_per_table(synth: Synthesized) -> None:
    template = synth.template("data")
    # One per table, and the cost guard's two (test_cost_guard.py).
    template.resource_count_is("AWS::CloudWatch::Alarm", len(TABLE_KEYS) + 2)
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmDescription": Match.string_like_regexp("throttled"),
            "Metrics": Match.array_with([Match.object_like({"Expression": "r + w"})]),
            "Threshold": 1,
        },
    )


def test_outputs_name_bucket_and_tables(synth: Synthesized) -> None:
    outputs = synth.templates["data"]["Outputs"]
    assert "BucketName" in outputs
    descriptions = {o.get("Description") for o in outputs.values()}
    assert {f"SYNAPSCRIBE_{f.upper()}" for f in TABLE_KEYS} <= descriptions


def _scaling_triggers(synth: Synthesized) -> dict[str, set[str]]:
    """Alarms whose actions are Auto Scaling policies, by stack (constructs/fleet_scaling.py)."""
    found: dict[str, set[str]] = {}
    for name, template in synth.templates.items():
        policies = set(resources_of(template, "AWS::AutoScaling::ScalingPolicy"))
        for alarm_id, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
            actions = alarm["Properties"].get("AlarmActions") or []
            if actions and all(
                a.get("Fn::GetAtt", [None])[0] in policies for a in actions if isinstance(a, dict)
            ):
                found.setdefault(name, set()).add(alarm_id)
    return found


def test_every_alarm_notifies_the_encrypted_topic(synth: Synthesized) -> None:
    data = synth.templates["data"]
    (topic_id,) = [
        k
        for k, t in resources_of(data, "AWS::SNS::Topic").items()
        if t["Properties"]["DisplayName"] == "SynapScribe alarms"
    ]
    topic = data["Resources"][topic_id]["Properties"]
    # The topic's own key (the stack also has a key for its log groups).
    key = data["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    # Only this account's alarms may use the key (no confused deputy).
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert ":cloudwatch:eu-west-1:123456789012:alarm:*" in json.dumps(cloudwatch["Condition"]["ArnLike"])
    total = 0
    scaling_triggers = _scaling_triggers(synth)
    assert sum(len(ids) for ids in scaling_triggers.values()) == 1, scaling_triggers
    for name, template in synth.templates.items():
        for alarm_id, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
            actions = json.dumps(alarm["Properties"].get("AlarmActions"))
            if alarm_id in scaling_triggers.get(name, ()):
                # Not an operator's alarm: it drives the scale-in policy, its only action.
                assert "ScaleIn" in actions and topic_id not in actions, actions
                continue
            assert topic_id in actions, (name, alarm["Properties"]["AlarmDescription"])
            total += 1
    assert total >= 10


def test_prod_alarm_topic_mails_the_configured_address(prod_assembly: Path) -> None:
    """Someone hears prod: its topic has an email subscription to cdk.json's alarm_email."""
    template = json.loads((prod_assembly / "SynapScribe-prod-Data.template.json").read_text())
    (subscription,) = _mail(template)
    (topic_id,) = [
        k
        for k, t in resources_of(template, "AWS::SNS::Topic").items()
        if t["Properties"]["DisplayName"] == "SynapScribe alarms"
    ]
    props = subscription["Properties"]
    expected = default_context()["synapscribe:environments"]["prod"]["alarm_email"]
    assert props["Protocol"] == "email" and props["Endpoint"] == expected
    assert props["TopicArn"] == {"Ref": topic_id}


def test_dev_without_an_address_has_no_subscription(synth: Synthesized) -> None:
    assert synth.platform.config.alarm_email is None
    assert not _mail(synth.templates["data"])


def _mail(template: dict[str, Any]) -> list[dict[str, Any]]:
    subscriptions = resources_of(template, "AWS::SNS::Subscription").values()
    return [s for s in subscriptions if s["Properties"]["Protocol"] == "email"]
