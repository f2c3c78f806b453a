"""The student page: a private bucket behind CloudFront (origin access control), and its files
with a `config.json` for this environment.

Two stacks because of the order AWS needs: the lecture bucket's CORS must name the page's origin
(the distribution's domain), so the distribution exists before the Data stack; the page's
`config.json` names the WebSocket URL and the identity pool, so its content is deployed after the
Api and Identity stacks.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, CfnResource, DefaultStackSynthesizer, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct, IConstruct
from synapscribe.platform import PlatformConfig
from synapscribe.web import STATIC, page_config

from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs.lecture_bucket import log_bucket, private_bucket
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import (
    HELPER_FUNCTION_W3005,
    acknowledge,
    acknowledge_cfn_lint,
    acknowledge_checkov,
    managed_policy_findings,
    wildcard_findings,
)

#: Where the page may connect: the WebSocket API, Cognito and STS for guest credentials, and the
#: lecture bucket's presigned POST and GET URLs (virtual-hosted, global or regional endpoint).
CONNECT_SOURCES = (
    "wss://*.execute-api.{region}.amazonaws.com",
    "https://cognito-identity.{region}.amazonaws.com",
    "https://sts.{region}.amazonaws.com",
    "https://*.s3.amazonaws.com",
    "https://*.s3.{region}.amazonaws.com",
)


def content_security_policy(region: str) -> str:
    sources = " ".join(s.format(region=region) for s in CONNECT_SOURCES)
    s3_sources = " ".join(s.format(region=region) for s in CONNECT_SOURCES[3:])
    return "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {sources}",
            f"media-src {s3_sources} blob:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_policy(region: str, websocket_url: str, bucket_name: str) -> str:
    """The deployed page's own policy, in a <meta> of its index.html: this environment's WebSocket
    API and lecture bucket by name. The distribution's header policy (above) is made before the API
    and the bucket exist (PageHosting deploys first: the bucket's CORS names the page's domain), so
    it can only name them by wildcard; a browser enforces every policy it is given, so this one
    narrows what the page may reach to this environment's own endpoints."""
    buckets = f"https://{bucket_name}.s3.amazonaws.com https://{bucket_name}.s3.{region}.amazonaws.com"
    return "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {websocket_url} https://cognito-identity.{region}.amazonaws.com "
            f"https://sts.{region}.amazonaws.com {buckets}",
            f"media-src {buckets} blob:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
        ]
    )


def index_with_policy(policy: str) -> str:
    """The page's index.html with `policy` as its first <head> element (before any script)."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    head = "<head>\n"
    if head not in html:
        raise ValueError("index.html has no <head> line for the page's policy")
    return html.replace(head, f"{head}  {meta}\n", 1)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class PageHostingStack(Stack):
    """Private bucket, CloudFront with origin access control; `origin` is the page's origin."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.removal == "retain" else RemovalPolicy.DESTROY
        self.logs = log_bucket(self, "Logs", config.log_retention_days, removal)
        self.bucket = private_bucket(self, "Bucket", logs=self.logs, removal=removal)
        acknowledge_checkov(
            self.bucket,
            "CKV_AWS_21",
            "The bucket holds the repository's static page, rewritten and pruned by every deploy; the "
            "repository is its history, and versions would only keep pruned copies.",
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(self.region), override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"SynapScribe student page ({config.name})",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
            ),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        self._acknowledge_distribution()
        self.origin = f"https://{self.distribution.distribution_domain_name}"
        CfnOutput(self, "PageUrl", value=self.origin + "/", description="the student page")
        # Named outputs read by name (Fn::GetStackOutput), never exported (see
        # DataStack.imported_bucket_arn): the content stack's acknowledgements name the bucket,
        # so its ARN must read the same before and after synthesis (see nag.py).
        self._outputs = {
            "PageBucketArn": self.bucket.bucket_arn,
            # By name too: a name split out of an ARN read at deploy time puts Fn::GetStackOutput
            # inside Fn::Split, which CloudFormation does not accept (cfn-lint E1017).
            "PageBucketName": self.bucket.bucket_name,
            "PageDistributionId": self.distribution.distribution_id,
            "PageDomainName": self.distribution.distribution_domain_name,
        }
        for name, value in self._outputs.items():
            CfnOutput(self, name, value=value)

    def imported(self, consumer: Stack, output: str) -> str:
        """One of the outputs above in another stack, read at deploy time (a weak reference, no
        export), and a stack dependency."""
        if output not in self._outputs:
            raise KeyError(f"{self.stack_name} has no output {output!r}")
        consumer.add_stack_dependency(self)
        return Fn.get_stack_output(self.stack_name, output)

    def _acknowledge_distribution(self) -> None:
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "Students open the page from anywhere. The distribution serves a few cached static files; "
            "what strangers can make the API behind it cost is bounded by the stage and route "
            "throttles and the monthly AWS Budget, whose action closes intake and the GPU fleet.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "The distribution serves a few static files (GET/HEAD, cached); nothing behind it takes "
            "input, so a WAF would guard nothing.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate lets CloudFront choose the viewer TLS policy; "
            "TLSv1.2_2021 is set and takes effect once an alternate domain with its own certificate is "
            "configured.",
        )
        acknowledge_checkov(
            self.distribution,
            "CKV_AWS_174",
            "The page is served on the default *.cloudfront.net certificate, whose viewer TLS policy "
            "CloudFront sets itself; TLSv1.2_2021 is configured and applies once an alternate domain "
            "with its own certificate is added.",
        )
        acknowledge_checkov(
            self.distribution,
            "CKV_AWS_68",
            "A WAF web ACL costs a monthly fee per ACL and rule to guard a few static files (GET/HEAD, "
            "cached) for anonymous students; nothing behind the distribution takes input. The API is "
            "not behind it (WAF cannot attach to a WebSocket API): its stage and route throttles and "
            "the monthly AWS Budget's action bound what it costs.",
        )


class PageContentStack(Stack):
    """The page's files and its `config.json` (deploy-time values) in the hosting bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        platform: PlatformConfig,
        hosting: PageHostingStack,
        websocket_url: str,
        identity_pool_id: str,
        guest_role_arn: str,
        lecture_bucket_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = page_config(
            platform,
            websocket_url,
            mode="deployed",
            region=self.region,
            identity_pool_id=identity_pool_id,
            guest_role_arn=guest_role_arn,
        )
        log_group = retained_log_group(self, "DeploymentLogs", config.log_retention_days)
        bucket_arn = hosting.imported(self, "PageBucketArn")
        bucket = s3.Bucket.from_bucket_attributes(
            self,
            "PageBucket",
            bucket_arn=bucket_arn,
            bucket_name=hosting.imported(self, "PageBucketName"),
        )
        distribution = cloudfront.Distribution.from_distribution_attributes(
            self,
            "PageDistribution",
            distribution_id=hosting.imported(self, "PageDistributionId"),
            domain_name=hosting.imported(self, "PageDomainName"),
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Files",
            sources=[
                s3deploy.Source.asset(str(STATIC), exclude=["index.html"]),
                s3deploy.Source.json_data("config.json", settings),
                # index.html with this environment's API and bucket in its policy (deploy-time values).
                s3deploy.Source.data(
                    "index.html",
                    index_with_policy(page_policy(self.region, websocket_url, lecture_bucket_name)),
                ),
            ],
            destination_bucket=bucket,
            distribution=distribution,
            distribution_paths=["/*"],
            prune=True,
            log_group=log_group,
        )
        self._invalidate_only(
            self.format_arn(
                service="cloudfront",
                region="",
                resource="distribution",
                resource_name=distribution.distribution_id,
            )
        )
        self._acknowledge_deployment(f"{bucket_arn}/*")
        self._handler_after_its_logs(log_group)

    def _invalidate_only(self, distribution_arn: str) -> None:
        """CDK grants the deployment handler CloudFront invalidations on `*`; narrow that statement
        of its role's policy to this page's distribution (CreateInvalidation and GetInvalidation
        take a distribution ARN: Service Authorization Reference, Amazon CloudFront)."""
        policies = [
            n
            for child in self.node.children
            if child.node.id.startswith("Custom::CDKBucketDeployment")
            for n in child.node.find_all()
            if isinstance(n, iam.CfnPolicy)
        ]
        if len(policies) != 1:
            raise ValueError(f"expected the deployment handler's one policy, found {len(policies)}")
        (policy,) = policies
        statements = self.resolve(policy.policy_document)["Statement"]
        found = [
            i for i, st in enumerate(statements) if "cloudfront:CreateInvalidation" in _listed(st["Action"])
        ]
        if len(found) != 1 or statements[found[0]]["Resource"] != "*":
            raise ValueError(f"CDK's invalidation grant changed shape: {statements}")
        policy.add_property_override(f"PolicyDocument.Statement.{found[0]}.Resource", distribution_arn)

    def _handler_after_its_logs(self, log_group: Construct) -> None:
        """The deployment handler logs to `log_group` (LoggingConfig); created after it, so Lambda
        never makes /aws/lambda/<name> itself on the first invocation (as for CDK's other helper
        functions, log_groups.retain_helper_function_logs)."""
        cfn_group = log_group.node.default_child
        assert isinstance(cfn_group, CfnResource)
        for child in self.node.children:
            function = child.node.default_child
            if child.node.id.startswith("Custom::CDKBucketDeployment") and isinstance(function, CfnResource):
                function.add_resource_dependency(cfn_group)

    def _acknowledge_deployment(self, objects: str) -> None:
        """CDK's BucketDeployment handler (a singleton function at stack level) copies the asset
        into the page bucket and invalidates the distribution; its grants are CDK's own."""
        assets = (
            f"arn:{Aws.PARTITION}:s3:::cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-"
            f"{self.account}-{self.region}/*"
        )
        for child in self.node.children:
            if not child.node.id.startswith("Custom::CDKBucketDeployment"):
                continue
            self._acknowledge_handler_linters(child)
            acknowledge(
                child,
                "AwsSolutions-L1",
                "CDK's BucketDeployment handler pins its own Python runtime; it runs only during deploys.",
            )
            acknowledge(
                child,
                "AwsSolutions-IAM4",
                "CDK's BucketDeployment handler uses AWSLambdaBasicExecutionRole for its logs.",
                managed_policy_findings("service-role/AWSLambdaBasicExecutionRole"),
            )
            acknowledge(
                child,
                "AwsSolutions-IAM5",
                "CDK grants its deployment handler read on this app's asset objects and read/write on "
                "the page bucket's objects (names known only at deploy time); its CloudFront "
                "invalidations are narrowed to the page's distribution.",
                [
                    *(
                        f"Action::s3:{a}"
                        for a in ("GetBucket*", "GetObject*", "List*", "Abort*", "DeleteObject*")
                    ),
                    *wildcard_findings(self, [assets, objects]),
                ],
            )
            acknowledge(
                child,
                "AwsSolutions-IAM5",
                "cdk-nag reads CDK's own statement (CloudFront invalidations on *); the template's "
                "resource is overridden to the page's distribution ARN (_invalidate_only; "
                "tests/cdk/test_page_stack.py checks the synthesized policy).",
                ["Resource::*"],
            )

    @staticmethod
    def _acknowledge_handler_linters(handler: IConstruct) -> None:
        """cfn-lint's and checkov's findings on CDK's BucketDeployment handler (a Function of
        CDK's, so nag.acknowledge_cdk_internals does not see it)."""
        acknowledge_cfn_lint(handler, "W3005", HELPER_FUNCTION_W3005)
        for check, reason in {
            "CKV_AWS_115": "CDK's BucketDeployment handler runs once per deploy of this stack; reserving "
            "concurrency for it would take it from the account's pool all year.",
            "CKV_AWS_116": "CloudFormation invokes the handler and waits for its reply; a failure fails "
            "(and rolls back) the deployment, so there is no event to keep for later.",
            "CKV_AWS_117": "The handler calls only AWS APIs (S3 copies, a CloudFront invalidation) "
            "during deploys; it needs nothing in the VPC.",
            "CKV_AWS_173": "Its one variable, AWS_CA_BUNDLE, is the path of the runtime's CA bundle set "
            "by CDK, no secret; Lambda encrypts it at rest with its AWS managed key.",
        }.items():
            acknowledge_checkov(handler, check, reason)
