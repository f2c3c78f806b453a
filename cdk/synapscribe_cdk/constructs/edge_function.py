"""A Python 3.12 Lambda in the VPC's edge subnets, running a handler of the runtime package."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from synapscribe_cdk.constructs.function_role import VpcPlacement, function_role
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import acknowledge, acknowledge_cfn_lint, acknowledge_checkov

RUNTIME = lambda_.Runtime.PYTHON_3_12


class EdgeFunction(Construct):
    """The function, its log group and an errors alarm."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        description: str,
        memory_mib: int,
        timeout: Duration,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: dict[str, str],
        log_retention_days: int,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = retained_log_group(self, "Logs", log_retention_days)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=code,
            handler=handler,
            description=description,
            memory_size=memory_mib,
            timeout=timeout,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            environment=environment,
            log_group=log_group,
            role=function_role(
                self,
                "Role",
                log_group=log_group,
                vpc=VpcPlacement(
                    subnet_ids=vpc.select_subnets(
                        subnet_group_name=subnets.subnet_group_name, subnet_type=subnets.subnet_type
                    ).subnet_ids,
                    security_group_id=security_group.security_group_id,
                ),
            ),
            reserved_concurrent_executions=reserved_concurrency,
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Pinned to Python 3.12 on purpose: the bundled pydantic-core and PyYAML wheels are cp312 builds.",
        )
        acknowledge_lambda_findings(self.function)
        self.errors_alarm = self.function.metric_errors(
            period=Duration.minutes(5), statistic="Sum"
        ).create_alarm(
            self,
            "Errors",
            alarm_description=(
                f"{description}: the function raised errors (crashes, timeouts or AWS API failures). "
                "Clients see failed requests; read the function's log group."
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


def acknowledge_lambda_findings(function: lambda_.Function) -> None:
    """What every function of ours leaves to the linters, and why."""
    acknowledge_cfn_lint(
        function,
        "W3005",
        "CDK's Function declares DependsOn its role and role policy so the policy exists before the "
        "first invocation; the role's entry repeats the GetAtt's implicit dependency and is harmless.",
    )
    acknowledge_checkov(
        function,
        "CKV_AWS_173",
        "The environment holds resource names and settings, no secret; Lambda encrypts it at rest "
        "with its AWS managed key, and a customer managed key would protect nothing more.",
    )
