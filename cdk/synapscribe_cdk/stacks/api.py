"""API: the WebSocket API, its two Lambdas (WebSocket handler, lecture validation) and their wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_ssm as ssm
from constructs import Construct
from synapscribe.contract import ACTIONS
from synapscribe.edge import intake
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.bundling import prepare_lambda_asset
from synapscribe_cdk.config import EnvironmentConfig
from synapscribe_cdk.constructs import permissions
from synapscribe_cdk.constructs.edge_function import EdgeFunction
from synapscribe_cdk.constructs.failure_queue import FailureQueue
from synapscribe_cdk.constructs.log_groups import retained_log_group
from synapscribe_cdk.nag import acknowledge, acknowledge_checkov, managed_policy_findings
from synapscribe_cdk.stacks.api_alarms import api_errors_alarm, request_rate_alarms
from synapscribe_cdk.stacks.api_grants import grant_edge_functions
from synapscribe_cdk.stacks.data import DataStack
from synapscribe_cdk.stacks.network import EDGE_SUBNETS, NetworkStack

WEBSOCKET_HANDLER = "synapscribe.edge.websocket_handler.handler"
VALIDATION_HANDLER = "synapscribe.edge.validate_lecture.handler"
SWEEPER_HANDLER = "synapscribe.edge.sweeper.handler"
#: A sweeper run hands a few lectures to AgentCore; it must end well before the next run.
SWEEPER_TIMEOUT = Duration.seconds(120)
#: API Gateway closes an integration after 29 s; the handler only hands work to AgentCore.
WEBSOCKET_HANDLER_TIMEOUT = Duration.seconds(20)
API_ID_OUTPUT = "ApiId"


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
        # Each function's asset holds its handler's own modules (bundling.import_closure).
        code = {
            handler: lambda_.Code.from_asset(str(prepare_lambda_asset(repo_root, handler)))
            for handler in (WEBSOCKET_HANDLER, VALIDATION_HANDLER, SWEEPER_HANDLER)
        }
        # The operator's intake switch (edge/intake.py), created open. The budget action and the
        # operator's guide write it by name; a deploy rewrites it only when this value changes.
        self.intake = ssm.StringParameter(
            self,
            "Intake",
            parameter_name=intake.parameter_name(config.name),
            string_value=json.dumps(intake.OPEN),
            description="SynapScribe intake switch: uploads and questions open or closed (docs/operators-guide.md)",
        )
        environment = {
            **data.resource_environment(),
            "SYNAPSCRIBE_AGENTCORE_URL": network.agentcore_url,
            "SYNAPSCRIBE_IDENTITY_SOURCE": "cognito",
            # The handler starts this group when no GPU host is healthy (edge/warming.py).
            "SYNAPSCRIBE_FLEET_GROUP": config.fleet_group_name,
            # The service's ceilings (ceilings.py) and the intake switch the handler reads.
            "SYNAPSCRIBE_CEILINGS": config.ceilings.model_dump_json(),
            "SYNAPSCRIBE_PER_ADDRESS": config.per_address.model_dump_json(),
            "SYNAPSCRIBE_INTAKE_PARAMETER": intake.parameter_name(config.name),
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
            code=code[WEBSOCKET_HANDLER],
            handler=WEBSOCKET_HANDLER,
            description="SynapScribe WebSocket handler",
            timeout=WEBSOCKET_HANDLER_TIMEOUT,
            environment=environment,
            reserved_concurrency=config.reserved_concurrency.websocket_handler,
            **placement,
        )
        acknowledge_checkov(
            self.websocket_handler.function,
            "CKV_AWS_116",
            "API Gateway invokes it synchronously and gets its error back; a dead-letter queue only "
            "receives events of asynchronous invocations.",
        )

        integration = integrations.WebSocketLambdaIntegration("Handler", self.websocket_handler.function)
        self.api = apigw.WebSocketApi(
            self,
            "WebSocketApi",
            description="SynapScribe client API (see docs/contract.md)",
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
        # Lower limits on the costly routes (a stage's route settings, by route key). `$default`
        # (what route selection cannot read) gets the busiest route's: the handler acts on no
        # message there, but each one still costs an invocation.
        cfn_stage.route_settings = {
            route: {"ThrottlingRateLimit": t.rate_limit, "ThrottlingBurstLimit": t.burst_limit}
            for route, t in config.route_throttles_with_default().items()
        }
        for child in self.api.node.children:
            if isinstance(child, apigw.WebSocketRoute):
                cfn_stage.node.add_dependency(child)

        self.validation = EdgeFunction(
            self,
            "LectureValidation",
            code=code[VALIDATION_HANDLER],
            handler=VALIDATION_HANDLER,
            description="SynapScribe lecture validation",
            timeout=Duration.seconds(config.validation_timeout_seconds),
            environment={**environment, "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": self.stage.callback_url},
            reserved_concurrency=config.reserved_concurrency.validation,
            **placement,
        )
        # S3 invokes it asynchronously: bounded retries, then the event waits in a queue (alarmed).
        self.validation_failures = FailureQueue(self, "ValidationFailures", what="Lecture validation")
        self.validation.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.validation_failures.queue),
            retry_attempts=config.validation_retry_attempts,
            max_event_age=Duration.seconds(config.validation_max_event_age_seconds),
        )
        acknowledge_checkov(
            self.validation.function,
            "CKV_AWS_116",
            "Failed events go to its on-failure destination (the alarmed ValidationFailures queue), "
            "which keeps the error with the event; a dead-letter queue would be a second copy.",
        )
        self.sweeper = self._sweeper(code[SWEEPER_HANDLER], environment, placement, platform)

        grant_edge_functions(
            self,
            data,
            platform,
            config.fleet_group_name,
            permissions.post_to_connections(self.api.api_id, self.stage.stage_name),
            self.intake.parameter_arn,
            {
                "websocket_handler": self.websocket_handler.function,
                "validation": self.validation.function,
                "sweeper": self.sweeper.function,
            },
        )

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
            self.validation_failures.alarm,
            self.sweeper.errors_alarm,
            api_errors_alarm(self, self.api, self.stage),
            *request_rate_alarms(
                self,
                self.api,
                self.stage,
                [self.websocket_handler.function, self.validation.function],
                config,
            ),
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
        # Read by name, never exported (see DataStack.imported_bucket_arn).
        CfnOutput(self, API_ID_OUTPUT, value=self.api.api_id)
        CfnOutput(self, "Region", value=self.region, description="AWS_REGION")

    def imported_api_id(self, consumer: Stack) -> str:
        """The API id in another stack, read from this stack's output (see
        DataStack.imported_bucket_arn)."""
        consumer.add_stack_dependency(self)
        return Fn.get_stack_output(self.stack_name, API_ID_OUTPUT)

    def _sweeper(
        self,
        code: lambda_.Code,
        environment: dict[str, str],
        placement: dict[str, Any],
        platform: PlatformConfig,
    ) -> EdgeFunction:
        """Resumes lectures a dead AgentCore left `transcribing`, on a schedule (one run at a time)."""
        sweeper = EdgeFunction(
            self,
            "LectureSweeper",
            code=code,
            handler=SWEEPER_HANDLER,
            description="SynapScribe lecture sweeper",
            timeout=SWEEPER_TIMEOUT,
            environment=environment,
            reserved_concurrency=1,
            **placement,
        )
        events.Rule(
            self,
            "SweeperSchedule",
            description="SynapScribe: resume lectures stuck in transcribing, remove stale pending ones",
            schedule=events.Schedule.rate(Duration.seconds(platform.sweeper.interval_seconds)),
            targets=[targets.LambdaFunction(sweeper.function, retry_attempts=0)],
        )
        acknowledge_checkov(
            sweeper.function,
            "CKV_AWS_116",
            "Every scheduled run sweeps everything that is due, so a failed run is redone by the next "
            "one; a queued copy of the schedule's event would replay nothing.",
        )
        return sweeper
