"""ImagePipeline: the GPU image's weekly rebuild, once per account and region.

A CodeBuild project checks out this repository and runs ami/buildspec.yml: the steps of
`synapscribe ami` (bake, verify, promote and roll out dev, then prod, prune), the same commands an
operator runs by hand. EventBridge starts it weekly; `aws codebuild start-build` starts it at any
time. A failed build goes to this stack's alarm topic.

The verify instance runs in this stack's own VPC: isolated subnets (no internet), reached only
through the Systems Manager endpoints, with a security group that has no inbound rule.

The build's role may do what the steps do and no more: RunInstances only of the fleet's first
instance type and only with the project's tag, SSM parameters only the environments' channels,
Run Command only on instances tagged as verify instances, instance refreshes only of the
environments' fleets.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.config import EnvironmentConfig, ImagePipelineConfig
from synapscribe_cdk.constructs.alarm_topic import AlarmTopic
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.constructs.vpc_checks import acknowledge_listed_zones, rejected_traffic_flow_logs
from synapscribe_cdk.nag import acknowledge, managed_policy_findings, wildcard_findings
from synapscribe_cdk.stacks.image_build_policy import build_statements

STACK_NAME = "SynapScribe-ImagePipeline"
PROJECT_NAME = "SynapScribe-ImagePipeline"
VERIFY_PROFILE_NAME = "SynapScribe-ImageVerify"
BUILDSPEC = "ami/buildspec.yml"
#: CodeBuild's longest build (8 hours): bake ~1 h, verify, two rollouts with their checkpoints.
BUILD_TIMEOUT = Duration.hours(8)
#: Session Manager and Run Command reach an instance in a subnet without internet through these.
SSM_ENDPOINTS = ("SSM", "SSM_MESSAGES", "EC2_MESSAGES")


class ImagePipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str = STACK_NAME,
        *,
        settings: ImagePipelineConfig,
        environments: list[EnvironmentConfig],
        platform: PlatformConfig,
        zones: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._zones = zones
        self.environments = environments
        self.platform = platform
        #: The type verify launches (and Packer builds on): the first environment's first type.
        self.instance_type = environments[0].instance_types[0]
        self._network(settings, zones)
        self.verify_role = self._verify_role()
        self.alarms = AlarmTopic(self, "Alarms", email=settings.alarm_email)
        self.alarms.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
            )
        )
        self.project = self._project(settings)
        # Weekly, and by hand with `aws codebuild start-build --project-name SynapScribe-ImagePipeline`.
        self.schedule = events.Rule(
            self,
            "Weekly",
            description="Rebuild, verify and roll out the GPU image",
            schedule=events.Schedule.expression(settings.schedule),
            targets=[targets.CodeBuildProject(self.project)],
        )
        self.failures = self.project.on_build_failed(
            "Failed", description="The image pipeline failed", target=targets.SnsTopic(self.alarms.topic)
        )
        CfnOutput(self, "ProjectName", value=self.project.project_name)
        CfnOutput(self, "VerifySubnetId", value=self.subnet.subnet_id)
        CfnOutput(self, "VerifySecurityGroupId", value=self.verify_sg.security_group_id)
        CfnOutput(self, "VerifyInstanceProfile", value=VERIFY_PROFILE_NAME)

    @property
    def availability_zones(self) -> list[str]:
        """The configured zones: without this, CDK would look them up in the account (a context
        lookup, which needs AWS credentials at synth time)."""
        return self._zones

    # -----------------------------------------------------------------------------------------

    def _network(self, settings: ImagePipelineConfig, zones: list[str]) -> None:
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.vpc_cidr),
            availability_zones=zones,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Verify", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=27
                )
            ],
            flow_logs=rejected_traffic_flow_logs(self, settings.log_retention_days),
        )
        acknowledge_listed_zones(self.vpc)
        self.subnet = self.vpc.isolated_subnets[0]
        self.verify_sg = ec2.SecurityGroup(
            self,
            "VerifySg",
            vpc=self.vpc,
            description="SynapScribe image verify instance: no inbound; HTTPS to the SSM endpoints only",
            allow_all_outbound=False,
        )
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointsSg",
            vpc=self.vpc,
            description="Systems Manager endpoints: HTTPS from the verify instance only",
            allow_all_outbound=False,
        )
        endpoint_sg.add_ingress_rule(self.verify_sg, ec2.Port.tcp(443), "HTTPS from the verify instance")
        self.verify_sg.add_egress_rule(endpoint_sg, ec2.Port.tcp(443), "HTTPS to the SSM endpoints")
        for name in SSM_ENDPOINTS:
            self.vpc.add_interface_endpoint(
                name,
                service=getattr(ec2.InterfaceVpcEndpointAwsService, name),
                security_groups=[endpoint_sg],
                private_dns_enabled=True,
                open=False,
            )

    def _verify_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "VerifyRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="SynapScribe image verify instance: Run Command only",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AmazonSSMManagedInstanceCore is what the SSM agent needs for Run Command, through which "
            "the pipeline checks the instance: it has no SSH and no inbound rule.",
            managed_policy_findings("AmazonSSMManagedInstanceCore"),
        )
        iam.CfnInstanceProfile(
            self, "VerifyProfile", instance_profile_name=VERIFY_PROFILE_NAME, roles=[role.role_name]
        )
        return role

    def _project(self, settings: ImagePipelineConfig) -> codebuild.Project:
        key = kms.Key(
            self, "BuildKey", description="SynapScribe image pipeline builds", enable_key_rotation=True
        )
        role = iam.Role(
            self,
            "BuildRole",
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description="SynapScribe image pipeline: bake, verify, promote, roll out, prune",
        )
        project = codebuild.Project(
            self,
            "Project",
            project_name=PROJECT_NAME,
            description="synapscribe ami: bake, verify, promote dev, roll out dev, promote prod, roll out prod, prune",
            source=codebuild.Source.git_hub(
                owner=settings.github_owner, repo=settings.github_repo, branch_or_ref=settings.branch
            ),
            build_spec=codebuild.BuildSpec.from_source_filename(BUILDSPEC),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.SMALL,
                privileged=False,
            ),
            environment_variables={
                "VERIFY_SUBNET_ID": codebuild.BuildEnvironmentVariable(value=self.subnet.subnet_id),
                "VERIFY_SECURITY_GROUP_ID": codebuild.BuildEnvironmentVariable(
                    value=self.verify_sg.security_group_id
                ),
                "VERIFY_INSTANCE_PROFILE": codebuild.BuildEnvironmentVariable(value=VERIFY_PROFILE_NAME),
            },
            encryption_key=key,
            timeout=BUILD_TIMEOUT,
            role=role,
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(
                    log_group=retained_log_group(self, "BuildLogs", settings.log_retention_days)
                )
            ),
        )
        statements = build_statements(
            self.environments, self.platform, self.instance_type, self.verify_role.role_arn
        )
        for statement in statements:
            role.add_to_policy(statement)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Packer and the pipeline make instances, images, snapshots, key pairs and security groups "
            "whose ids exist only at run time; each wildcard is limited by resource type, by the "
            "project's tag or by the environments' names, and EC2's Describe calls and "
            "GetCommandInvocation take no resource.",
            [*wildcard_findings(self, [r for s in statements for r in s.resources]), "Action::ec2:Describe*"],
        )
        # What CodeBuild's construct grants its role itself: its key, report groups and log stream.
        project_id = self.get_logical_id(project.node.default_child)  # type: ignore[arg-type]
        where = f"arn:<AWS::Partition>:{{service}}:{self.region}:{self.account}"
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "CodeBuild's own grants to its role: its build key's data-key actions, the project's "
            "report groups and its log streams, named at run time.",
            [
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                f"Resource::{where.format(service='codebuild')}:report-group/<{project_id}>-*",
                f"Resource::{where.format(service='logs')}:log-group:/aws/codebuild/<{project_id}>:*",
            ],
        )
        return project
