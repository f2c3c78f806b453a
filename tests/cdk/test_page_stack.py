"""The student page on AWS: a private bucket behind CloudFront with origin access control, the
page's files and its config.json for this environment, and its origin in the lecture bucket's
CORS."""

from __future__ import annotations

import json

from synapscribe.web import CONTENT_TYPES
from synth_support import Synthesized, resources_of


def test_bucket_is_private_and_read_only_through_the_distribution(synth: Synthesized) -> None:
    template = synth.templates["page_hosting"]
    hosting = synth.template("page_hosting")
    hosting.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    )
    (oac,) = resources_of(template, "AWS::CloudFront::OriginAccessControl").values()
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    (distribution,) = resources_of(template, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultRootObject"] == "index.html" and "Logging" in config
    # Only CloudFront, for this distribution, may read the objects.
    statements = [
        s
        for p in resources_of(template, "AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    readers = [s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert len(readers) == 1 and readers[0]["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in readers[0]["Condition"]["StringEquals"]
    assert all(s.get("Principal") != "*" for s in statements)


def test_responses_carry_a_content_security_policy(synth: Synthesized) -> None:
    (policy,) = resources_of(
        synth.templates["page_hosting"], "AWS::CloudFront::ResponseHeadersPolicy"
    ).values()
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    for source in (
        "default-src 'self'",
        "wss://*.execute-api.eu-west-1.amazonaws.com",
        "https://cognito-identity.eu-west-1.amazonaws.com",
        "https://sts.eu-west-1.amazonaws.com",
        "frame-ancestors 'none'",
    ):
        assert source in csp, source
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == 365 * 86400


def test_page_url_is_an_output(synth: Synthesized) -> None:
    outputs = synth.templates["page_hosting"]["Outputs"]
    assert json.dumps(outputs["PageUrl"]["Value"]).startswith('{"Fn::Join": ["", ["https://", {"Fn::GetAtt"')


def test_lecture_bucket_admits_the_page_origin(synth: Synthesized) -> None:
    (bucket,) = [
        b
        for b in resources_of(synth.templates["data"], "AWS::S3::Bucket").values()
        if "CorsConfiguration" in b["Properties"]
    ]
    rules = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    page_rules = [r for r in rules if "PageHosting" in json.dumps(r["AllowedOrigins"])]
    assert len(page_rules) == 1
    assert sorted(page_rules[0]["AllowedMethods"]) == ["GET", "HEAD", "POST"]
    assert json.dumps(page_rules[0]["AllowedOrigins"]).startswith('[{"Fn::Join": ["", ["https://"')


def test_content_is_the_page_and_a_deployed_config(synth: Synthesized) -> None:
    (deployment,) = resources_of(synth.templates["page_content"], "Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert props["Prune"] is True and props["DistributionPaths"] == ["/*"]
    assert len(props["SourceObjectKeys"]) == 3  # the static files, config.json and index.html
    markers = json.dumps(props["SourceMarkers"][1])
    # config.json names this environment's WebSocket URL, identity pool and guest role at deploy time.
    assert ".execute-api.eu-west-1." in markers and "/prod" in markers
    # Read from the Identity stack's outputs at deploy time (weak references, no exports).
    assert '"StackName": "SynapScribe-dev-Identity"' in markers and "OutputRefGuests" in markers
    assert "UnauthenticatedRole" in markers and "ImportValue" not in markers
    # The static asset is the page's directory, with exactly the files it is made of.
    manifest = json.loads((synth.outdir / "SynapScribe-dev-PageContent.assets.json").read_text())
    dirs = [
        synth.outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip"
        and (synth.outdir / f["source"]["path"] / "index.html").exists()
    ]
    # index.html comes alone, with its policy (below), not from the page's directory.
    assert len(dirs) == 1 and [p.name for p in dirs[0].iterdir()] == ["index.html"]
    (static,) = [
        synth.outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip" and (synth.outdir / f["source"]["path"] / "app.js").exists()
    ]
    assert {p.name for p in static.iterdir()} == set(CONTENT_TYPES) - {"index.html"}


def test_the_deployed_page_may_reach_only_this_environments_api_and_bucket(synth: Synthesized) -> None:
    (deployment,) = resources_of(synth.templates["page_content"], "Custom::CDKBucketDeployment").values()
    index = json.dumps(deployment["Properties"]["SourceMarkers"][2])
    # Deploy-time values: the Api stack's WebSocket URL and the Data stack's bucket, by reference.
    assert '"StackName": "SynapScribe-dev-Api"' in index and '"StackName": "SynapScribe-dev-Data"' in index
    page = next(
        f
        for f in synth.outdir.rglob("index.html")
        if "Content-Security-Policy" in f.read_text(encoding="utf-8")
    )
    html = page.read_text(encoding="utf-8")
    policy = html.split('http-equiv="Content-Security-Policy" content="')[1].split('"')[0]
    assert html.index("Content-Security-Policy") < html.index("<script")
    connect = next(d for d in policy.split("; ") if d.startswith("connect-src"))
    assert "*" not in connect and connect.count(".s3.") == 2, connect


def test_the_deployment_invalidates_only_the_pages_distribution(synth: Synthesized) -> None:
    """CDK grants its deployment handler CloudFront invalidations on `*`; ours names the page's
    distribution (read from the hosting stack's output)."""
    template = synth.templates["page_content"]
    statements = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (invalidation,) = [s for s in statements if "cloudfront:CreateInvalidation" in s["Action"]]
    assert sorted(invalidation["Action"]) == ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"]
    resource = json.dumps(invalidation["Resource"])
    assert ":cloudfront::" in resource and ":distribution/" in resource, resource
    assert '"OutputName": "PageDistributionId"' in resource, resource
    assert all(s["Resource"] != "*" for s in statements)
