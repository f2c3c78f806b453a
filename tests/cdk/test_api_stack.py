"""The API stack: routes, IAM authorization on $connect, stage settings, Lambdas, grants, alarms."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match
from synapscribe.contract import ACTIONS
from synapscribe.platform import load_platform
from synapscribe.store import TABLE_KEYS
from synth_support import Synthesized, resources_of

WS_HANDLER = "synapscribe.edge.websocket_handler.handler"
VALIDATION_HANDLER = "synapscribe.edge.validate_lecture.handler"


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Handler name -> properties of the platform's own functions (not CDK's helpers)."""
    return {
        f["Properties"]["Handler"]: f["Properties"]
        for f in resources_of(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith("synapscribe.")
    }


def _policy_statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _role_of(function: dict[str, Any]) -> str:
    return function["Role"]["Fn::GetAtt"][0]


def _flat(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_routes_are_the_contract_actions_plus_system_routes(synth: Synthesized) -> None:
    routes = resources_of(synth.templates["api"], "AWS::ApiGatewayV2::Route")
    keys = sorted(r["Properties"]["RouteKey"] for r in routes.values())
    assert keys == sorted([*ACTIONS, "$connect", "$disconnect", "$default"])
    template = synth.template("api")
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"},
    )


def test_only_connect_is_iam_authorized(synth: Synthesized) -> None:
    routes = resources_of(synth.templates["api"], "AWS::ApiGatewayV2::Route").values()
    auth = {r["Properties"]["RouteKey"]: r["Properties"].get("AuthorizationType", "NONE") for r in routes}
    assert auth.pop("$connect") == "AWS_IAM"
    assert set(auth.values()) == {"NONE"}


def test_stage_throttles_and_logs(synth: Synthesized) -> None:
    config = synth.platform.config
    stages = list(resources_of(synth.templates["api"], "AWS::ApiGatewayV2::Stage").values())
    assert len(stages) == 1
    props = stages[0]["Properties"]
    assert props["StageName"] == config.stage_name == "prod"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.throttle.rate_limit
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.throttle.burst_limit
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert {"requestId", "routeKey", "connectionId", "status"} <= set(log_format)
    assert "Fn::GetAtt" in props["AccessLogSettings"]["DestinationArn"]
    synth.template("api").resource_count_is("AWS::ApiGateway::Account", 1)


def test_lambdas_runtime_memory_timeout_and_vpc(synth: Synthesized) -> None:
    config = synth.platform.config
    functions = _functions(synth.templates["api"])
    assert set(functions) == {WS_HANDLER, VALIDATION_HANDLER}
    for fn in functions.values():
        assert fn["Runtime"] == "python3.12"
        assert fn["MemorySize"] == config.lambda_memory_mib == 512
        assert fn["VpcConfig"]["SubnetIds"] and fn["VpcConfig"]["SecurityGroupIds"]
    assert functions[VALIDATION_HANDLER]["Timeout"] == config.validation_timeout_seconds == 300
    assert functions[WS_HANDLER]["Timeout"] < 29  # API Gateway's integration timeout


def test_lambda_environment_names_every_resource(synth: Synthesized) -> None:
    functions = _functions(synth.templates["api"])
    expected = {"SYNAPSCRIBE_BUCKET", "SYNAPSCRIBE_AGENTCORE_URL"} | {
        f"SYNAPSCRIBE_{f.upper()}" for f in TABLE_KEYS
    }
    for fn in functions.values():
        env = fn["Environment"]["Variables"]
        assert expected <= set(env)
        assert env["SYNAPSCRIBE_IDENTITY_SOURCE"] == "cognito"
        url = _flat(env["SYNAPSCRIBE_AGENTCORE_URL"])
        assert "DNSName" in url and f":{load_platform().ports.agentcore}" in url
    endpoint = _flat(
        functions[VALIDATION_HANDLER]["Environment"]["Variables"]["SYNAPSCRIBE_CONNECTIONS_ENDPOINT"]
    )
    assert "https://" in endpoint and "execute-api" in endpoint


def test_lambda_code_is_the_bundled_runtime_package(synth: Synthesized) -> None:
    fn = _functions(synth.templates["api"])[WS_HANDLER]
    asset_hash = fn["Code"]["S3Key"].split(".")[0]
    asset_dir = synth.outdir / f"asset.{asset_hash}"
    assert (asset_dir / "synapscribe" / "edge" / "__init__.py").is_file()
    assert (asset_dir / "synapscribe" / "platform.yaml").is_file()
    assert list((asset_dir / "pydantic_core").glob("_pydantic_core.cpython-312-x86_64-linux-gnu.so"))
    assert (
        list((asset_dir / "yaml").glob("_yaml.cpython-312-x86_64-linux-gnu.so"))
        or (asset_dir / "yaml").is_dir()
    )
    assert (asset_dir / "mutagen").is_dir() and (asset_dir / "pydantic_settings").is_dir()
    assert not (asset_dir / "boto3").exists(), "boto3 comes with the Lambda runtime"


def test_handler_permissions_are_least_privilege(synth: Synthesized) -> None:
    template = synth.templates["api"]
    prefixes = load_platform().storage.prefixes
    functions = _functions(template)
    ws = _policy_statements(template, _role_of(functions[WS_HANDLER]))
    val = _policy_statements(template, _role_of(functions[VALIDATION_HANDLER]))

    def actions(statements: list[dict[str, Any]]) -> set[str]:
        out: set[str] = set()
        for s in statements:
            out |= set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        return out

    assert actions(ws) == {
        "s3:PutObject", "s3:GetObject", "execute-api:ManageConnections",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
    }  # fmt: skip
    assert "s3:DeleteObject" in actions(val) and "s3:PutObject" not in actions(val)
    for statement in ws + val:
        resources = _flat(statement["Resource"])
        assert '"*"' not in resources, statement
        if statement["Action"] == "s3:PutObject":
            assert f"/{prefixes.lectures}*" in resources and f"/{prefixes.queries}*" in resources
            assert f"/{prefixes.responses}" not in resources
        if "execute-api:ManageConnections" in _flat(statement["Action"]):
            assert "/prod/*/@connections/*" in resources


def test_lecture_uploads_notify_the_validator(synth: Synthesized) -> None:
    template = synth.template("api")
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "LambdaFunctionConfigurations": [
                    Match.object_like(
                        {
                            "Events": ["s3:ObjectCreated:*"],
                            "Filter": {
                                "Key": {
                                    "FilterRules": [
                                        {"Name": "prefix", "Value": load_platform().storage.prefixes.lectures}
                                    ]
                                }
                            },
                        }
                    )
                ]
            },
            "Managed": False,
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission", {"Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com"}
    )


def test_alarms_cover_lambda_and_api_errors(synth: Synthesized) -> None:
    alarms = resources_of(synth.templates["api"], "AWS::CloudWatch::Alarm").values()
    descriptions = [a["Properties"]["AlarmDescription"] for a in alarms]
    assert len(descriptions) == 3
    assert sum("function raised errors" in d for d in descriptions) == 2
    api_alarm = next(a for a in alarms if "WebSocket API" in a["Properties"]["AlarmDescription"])
    metric_names = {
        m.get("MetricStat", {}).get("Metric", {}).get("MetricName")
        for m in api_alarm["Properties"]["Metrics"]
    }
    assert {"IntegrationError", "ExecutionError"} <= metric_names


def test_outputs_for_the_smoke_test(synth: Synthesized) -> None:
    outputs = synth.templates["api"]["Outputs"]
    assert {"WebSocketUrl", "ConnectionsEndpoint", "Region", "ApiId"} <= set(outputs)
    assert "wss://" in _flat(outputs["WebSocketUrl"]["Value"])
