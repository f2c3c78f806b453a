"""The API's own alarms: its integration and execution errors, and request rates above what
students make (someone looping requests, each one billed)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from synapscribe_cdk.config import EnvironmentConfig


def request_rate_alarms(
    scope: Construct,
    api: apigw.WebSocketApi,
    stage: apigw.WebSocketStage,
    functions: list[lambda_.Function],
    config: EnvironmentConfig,
) -> list[cloudwatch.Alarm]:
    """More messages, or edge invocations, in an hour than students make (cdk.json
    `cost_alarms`): someone is looping requests, each one billed."""
    hour = Duration.hours(1)
    limits = config.cost_alarms
    messages = cloudwatch.Metric(
        namespace="AWS/ApiGateway",
        metric_name="MessageCount",
        dimensions_map={"ApiId": api.api_id, "Stage": stage.stage_name},
        statistic="Sum",
        period=hour,
    ).create_alarm(
        scope,
        "MessageRate",
        alarm_description=(
            f"More than {limits.messages_per_hour} WebSocket messages reached the API in an hour "
            "(cost_alarms.messages_per_hour): requests in a loop. Find the source addresses in the "
            "access log group; close intake if needed."
        ),
        threshold=limits.messages_per_hour,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    invocations = cloudwatch.MathExpression(
        expression="handler + validation",
        using_metrics={
            "handler": functions[0].metric_invocations(period=hour, statistic="Sum"),
            "validation": functions[1].metric_invocations(period=hour, statistic="Sum"),
        },
        period=hour,
        label="edge invocations per hour",
    ).create_alarm(
        scope,
        "InvocationRate",
        alarm_description=(
            f"The WebSocket handler and the lecture validation ran more than "
            f"{limits.invocations_per_hour} times in an hour (cost_alarms.invocations_per_hour): "
            "messages or uploads in a loop. Find the source in the access logs; close intake if needed."
        ),
        threshold=limits.invocations_per_hour,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    return [messages, invocations]


def api_errors_alarm(
    scope: Construct, api: apigw.WebSocketApi, stage: apigw.WebSocketStage
) -> cloudwatch.Alarm:
    period = Duration.minutes(5)
    dims = {"ApiId": api.api_id, "Stage": stage.stage_name}

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
        scope,
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
