"""API: the WebSocket API, its two Lambdas (WebSocket handler, lecture validation) and their wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct
from synapscribe.contract import ACTIONS
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.bundling import prepare_lambda_asset
from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs import permissions
from synapscribe_cdk.constructs.edge_function import EdgeFunction
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import acknowledge, managed_policy_findings, wildcard_findings
from synapscribe_cdk.stacks.data import DataStack
from synapscribe_cdk.stacks.network import EDGE_SUBNETS, NetworkStack

WEBSOCKET_HANDLER = "synapscribe.edge.websocket_handler.handler"
VALIDATION_HANDLER = "synapscribe.edge.validate_lecture.handler"
#: API Gateway closes an integration after 29 s; the handler only hands work to AgentCore.
WEBSOCKET_HANDLER_TIMEOUT = Duration.seconds(20)
SYSTEM_ROUTES = ("$connect", "$disconnect", "$default")

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "time": "$context.requestTimeEpoch",
        "eventType": "$context.eventType",
        "routeKey": "$context.routeKey",
        "connectionId": "$context.connectionId",
        "identity": "$context.identity.cognitoIdentityId",
        "sourceIp": "$context.identity.sourceIp",
        "status": "$context.status",
        "error": "$context.error.message",
        "integrationError": "$context.integrationErrorMessage",
        "integrationLatency": "$context.integration.latency",
    }
)


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        platform: PlatformConfig,
        data: DataStack,
        network: NetworkStack,
        repo_root: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        code = lambda_.Code.from_asset(str(prepare_lambda_asset(repo_root)))
        environment = {
            **data.resource_environment(),
            "SYNAPSCRIBE_AGENTCORE_URL": network.agentcore_url,
            "SYNAPSCRIBE_IDENTITY_SOURCE": "cognito",
        }
        placement: dict[str, Any] = {
            "vpc": network.vpc,
            "subnets": ec2.SubnetSelection(subnet_group_name=EDGE_SUBNETS),
            "security_group": network.edge_sg,
            "memory_mib": config.lambda_memory_mib,
            "log_retention_days": config.log_retention_days,
        }
        # The WebSocket handler derives the @connections endpoint from each event, so it needs
        # no reference to the stage (which would make the API depend on itself).
        self.websocket_handler = EdgeFunction(
            self,
            "WebSocketHandler",
            code=code,
            handler=WEBSOCKET_HANDLER,
            description="SynapScribe WebSocket handler",
            timeout=WEBSOCKET_HANDLER_TIMEOUT,
            environment=environment,
            **placement,
        )

        integration = integrations.WebSocketLambdaIntegration("Handler", self.websocket_handler.function)
        self.api = apigw.WebSocketApi(
            self,
            "WebSocketApi",
            description="SynapScribe client API (see websocket-protocol.md)",
            route_selection_expression="$request.body.action",
            connect_route_options=apigw.WebSocketRouteOptions(
                integration=integration, authorizer=authorizers.WebSocketIamAuthorizer()
            ),
            disconnect_route_options=apigw.WebSocketRouteOptions(integration=integration),
            default_route_options=apigw.WebSocketRouteOptions(integration=integration),
        )
        for action in ACTIONS:
            self.api.add_route(action, integration=integration)
        for route in [c for c in self.api.node.children if isinstance(c, apigw.WebSocketRoute)]:
            if route.node.id != "$connect-Route":
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "A WebSocket API authorizes once, at $connect (IAM); every later message runs on that "
                    "authorized connection and the handler scopes it to the connection's owner.",
                )

        access_logs = retained_log_group(self, "AccessLogs", config.log_retention_days)
        self.stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage_name,
            auto_deploy=True,
            detailed_metrics_enabled=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle.rate_limit, burst_limit=config.throttle.burst_limit
            ),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )
        cfn_stage.node.add_dependency(self._cloudwatch_logging_role())

        self.validation = EdgeFunction(
            self,
            "LectureValidation",
            code=code,
            handler=VALIDATION_HANDLER,
            description="SynapScribe lecture validation",
            timeout=Duration.seconds(config.validation_timeout_seconds),
            environment={**environment, "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": self.stage.callback_url},
            **placement,
        )

        self._grant(data, platform)

        # S3 notifies the validator of new lectures. The bucket is imported by name so that the
        # notification (and its permission) live here, not in the Data stack (which would then
        # depend on this one).
        lectures_bucket = s3.Bucket.from_bucket_attributes(
            self, "LecturesBucket", bucket_name=data.bucket.bucket_name, bucket_arn=data.bucket.bucket_arn
        )
        lectures_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.validation.function),
            s3.NotificationKeyFilter(prefix=platform.storage.prefixes.lectures),
        )
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4",
                    "CDK's bucket-notification custom resource uses AWSLambdaBasicExecutionRole for its logs.",
                    managed_policy_findings("service-role/AWSLambdaBasicExecutionRole"),
                )

        self.alarms = [
            self.websocket_handler.errors_alarm,
            self.validation.errors_alarm,
            self._api_errors_alarm(),
        ]
        data.alarm_topic.notify(self.alarms)
        self.websocket_url = self.stage.url
        CfnOutput(self, "WebSocketUrl", value=self.stage.url, description="wss:// URL clients connect to")
        CfnOutput(
            self,
            "ConnectionsEndpoint",
            value=self.stage.callback_url,
            description="SYNAPSCRIBE_CONNECTIONS_ENDPOINT (@connections)",
        )
        self._api_id_export = f"{self.stack_name}-ApiId"
        CfnOutput(self, "ApiId", value=self.api.api_id, export_name=self._api_id_export)
        CfnOutput(self, "Region", value=self.region, description="AWS_REGION")

    def imported_api_id(self, consumer: Stack) -> str:
        """The API id in another stack, as an explicit import (see DataStack.imported_bucket_arn)."""
        consumer.add_stack_dependency(self)
        return Fn.import_value(self._api_id_export)

    def _grant(self, data: DataStack, platform: PlatformConfig) -> None:
        """Least privilege: the handler presigns uploads, checks query uploads and keeps all
        three tables; the validator reads, and may delete, uploaded lectures and updates their
        status. Both push to their clients through @connections."""
        prefixes = platform.storage.prefixes
        bucket_arn = data.imported_bucket_arn(self)
        tables = data.tables
        ws_fn, val_fn = self.websocket_handler.function, self.validation.function
        connections = permissions.manage_connections(self.api.api_id, self.stage.stage_name)
        grants = {
            ws_fn: [
                permissions.objects(["s3:PutObject"], bucket_arn, [prefixes.lectures, prefixes.queries]),
                permissions.objects(["s3:GetObject"], bucket_arn, [prefixes.queries]),
                permissions.tables(permissions.TABLE_ITEM_ACTIONS, [t.table_arn for t in tables.values()]),
                connections,
            ],
            val_fn: [
                permissions.objects(["s3:GetObject", "s3:DeleteObject"], bucket_arn, [prefixes.lectures]),
                permissions.tables(permissions.TABLE_ITEM_ACTIONS, [tables["lectures_table"].table_arn]),
                permissions.tables(permissions.TABLE_READ_ACTIONS, [tables["connections_table"].table_arn]),
                connections,
            ],
        }
        for fn, statements in grants.items():
            for statement in statements:
                fn.add_to_role_policy(statement)
            assert fn.role is not None
            acknowledge(
                fn.role,
                "AwsSolutions-IAM5",
                "Object wildcards stop at this platform's key prefixes, and @connections at this API's "
                "stage: the ids under them are made at run time.",
                wildcard_findings(self, [r for s in statements for r in s.resources]),
            )

    def _cloudwatch_logging_role(self) -> apigw_v1.CfnAccount:
        """API Gateway writes access logs only with an account-level CloudWatch role (one per
        account and region; a second stack setting it simply overwrites the same value)."""
        role = iam.Role(
            self,
            "ApiGatewayLogging",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-documented policy for API Gateway logging.",
            managed_policy_findings("service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
        )
        return apigw_v1.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)

    def _api_errors_alarm(self) -> cloudwatch.Alarm:
        period = Duration.minutes(5)
        dims = {"ApiId": self.api.api_id, "Stage": self.stage.stage_name}

        def metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map=dims,
                statistic="Sum",
                period=period,
            )

        errors = cloudwatch.MathExpression(
            expression="integration + execution",
            using_metrics={"integration": metric("IntegrationError"), "execution": metric("ExecutionError")},
            period=period,
            label="WebSocket API integration and execution errors",
        )
        return errors.create_alarm(
            self,
            "ApiErrors",
            alarm_description=(
                "The WebSocket API failed to run its Lambda integration or to execute requests: clients' "
                "messages are lost. Check the access log group and the handler's errors."
            ),
            threshold=5,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
