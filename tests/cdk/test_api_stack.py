"""The API stack: routes, IAM authorization on $connect, stage settings, Lambdas, grants, alarms."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match
from synapscribe.contract import ACTIONS
from synapscribe.host_registry import ALL_TABLE_KEYS as TABLE_KEYS
from synapscribe.platform import load_platform
from synapscribe.store import SWEEP_INDEX
from synth_support import Synthesized, resources_of

WS_HANDLER = "synapscribe.edge.websocket_handler.handler"
VALIDATION_HANDLER = "synapscribe.edge.validate_lecture.handler"
SWEEPER_HANDLER = "synapscribe.edge.sweeper.handler"


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
    # The account-wide logging role lives in the account stack (test_account_stack.py).
    synth.template("api").resource_count_is("AWS::ApiGateway::Account", 0)


def test_costly_routes_have_lower_throttles(synth: Synthesized) -> None:
    config = synth.platform.config
    (stage,) = resources_of(synth.templates["api"], "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["RouteSettings"]
    assert set(settings) == {*config.route_throttles, "$default"} == {"createUpload", "query", "$default"}
    # What route selection cannot read (or a NaN message) is held to the busiest route's limits.
    busiest = max(config.route_throttles.values(), key=lambda t: t.rate_limit)
    assert settings["$default"] == {
        "ThrottlingRateLimit": busiest.rate_limit,
        "ThrottlingBurstLimit": busiest.burst_limit,
    }
    for route, limits in config.route_throttles.items():
        assert settings[route] == {
            "ThrottlingRateLimit": limits.rate_limit,
            "ThrottlingBurstLimit": limits.burst_limit,
        }
        assert (
            limits.rate_limit < config.throttle.rate_limit
            and limits.burst_limit < config.throttle.burst_limit
        )
    # The stage names routes that exist when it is created.
    routes = resources_of(synth.templates["api"], "AWS::ApiGatewayV2::Route")
    assert set(routes) <= set(stage["DependsOn"])


def test_reserved_concurrency_caps_validation_and_floors_the_handler(synth: Synthesized) -> None:
    reserved = synth.platform.config.reserved_concurrency
    functions = _functions(synth.templates["api"])
    assert functions[VALIDATION_HANDLER]["ReservedConcurrentExecutions"] == reserved.validation
    assert functions[WS_HANDLER]["ReservedConcurrentExecutions"] == reserved.websocket_handler
    assert functions[SWEEPER_HANDLER]["ReservedConcurrentExecutions"] == 1  # one run at a time


def test_failed_validations_go_to_an_alarmed_encrypted_queue(synth: Synthesized) -> None:
    config = synth.platform.config
    template = synth.templates["api"]
    (queue_id, queue) = next(iter(resources_of(template, "AWS::SQS::Queue").items()))
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (invoke,) = resources_of(template, "AWS::Lambda::EventInvokeConfig").values()
    props = invoke["Properties"]
    assert props["MaximumRetryAttempts"] == config.validation_retry_attempts
    assert props["MaximumEventAgeInSeconds"] == config.validation_max_event_age_seconds
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    (validation_id,) = [
        k
        for k, f in resources_of(template, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == VALIDATION_HANDLER
    ]
    assert props["FunctionName"] == {"Ref": validation_id}
    depth = [
        a["Properties"]
        for a in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/SQS"
    ]
    assert len(depth) == 1 and depth[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert depth[0]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue_id, "QueueName"]}
    assert depth[0]["Threshold"] == 1
    policies = resources_of(template, "AWS::SQS::QueuePolicy").values()
    assert any("aws:SecureTransport" in _flat(p) for p in policies)


def test_sweeper_runs_on_a_schedule(synth: Synthesized) -> None:
    template = synth.templates["api"]
    sweeper_id = next(
        k
        for k, f in resources_of(template, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == SWEEPER_HANDLER
    )
    (rule,) = [
        r["Properties"]
        for r in resources_of(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    interval = load_platform().sweeper.interval_seconds
    assert rule["ScheduleExpression"] == f"rate({interval // 60} minutes)"
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [sweeper_id, "Arn"]}
    sweeper = template["Resources"][sweeper_id]["Properties"]
    assert sweeper["VpcConfig"]["SubnetIds"], "it reaches AgentCore's internal balancer"
    assert sweeper["Timeout"] < interval


def test_lambdas_runtime_memory_timeout_and_vpc(synth: Synthesized) -> None:
    config = synth.platform.config
    functions = _functions(synth.templates["api"])
    assert set(functions) == {WS_HANDLER, VALIDATION_HANDLER, SWEEPER_HANDLER}
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
    # The service's ceilings and the intake switch, as cdk.json sets them (issue 18).
    config = synth.platform.config
    for fn in functions.values():
        env = fn["Environment"]["Variables"]
        assert json.loads(env["SYNAPSCRIBE_CEILINGS"]) == config.ceilings.model_dump()
        assert json.loads(env["SYNAPSCRIBE_PER_ADDRESS"]) == config.per_address.model_dump()
        assert env["SYNAPSCRIBE_INTAKE_PARAMETER"] == f"/synapscribe/{config.name}/intake"
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


def _actions_by_resource(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in statements:
        assert s["Effect"] == "Allow"
        for resource in s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]:
            out.setdefault(_flat(resource), set()).update(
                s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            )
    return out


def _table_ref(table_field: str) -> str:
    """How a table's ARN reads in the API stack's template (a reference to the Data stack)."""
    label = table_field.removesuffix("_table").capitalize()
    return f"State{label}"


def _table_actions(statements: list[dict[str, Any]], index: bool = False) -> dict[str, set[str]]:
    """DynamoDB actions by table (index=False) or on the table's sweep index (index=True)."""
    found: dict[str, set[str]] = {}
    for resource, actions in _actions_by_resource(statements).items():
        dynamo = {a for a in actions if a.startswith("dynamodb:")}
        if dynamo and ("/index/" in resource) == index:
            (field,) = [f for f in TABLE_KEYS if _table_ref(f) in resource]
            found[field] = dynamo
    return found


def test_handler_permissions_are_least_privilege(synth: Synthesized) -> None:
    template = synth.templates["api"]
    prefixes = load_platform().storage.prefixes
    functions = _functions(template)
    ws = _policy_statements(template, _role_of(functions[WS_HANDLER]))
    val = _policy_statements(template, _role_of(functions[VALIDATION_HANDLER]))
    sweeper = _policy_statements(template, _role_of(functions[SWEEPER_HANDLER]))

    item = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ws_tables = _table_actions(ws)
    assert ws_tables["connections_table"] == item
    assert ws_tables["sessions_table"] == item  # UpdateItem: a question clip recorded on its session
    # The host registry, a few items, is read whole (edge/affinity.py); no other table is scanned.
    assert ws_tables.pop("hosts_table") == {"dynamodb:Scan"}
    assert all("dynamodb:Query" not in a and "dynamodb:Scan" not in a for a in ws_tables.values())
    ledger = {"dynamodb:GetItem", "dynamodb:UpdateItem"}  # quotas.py and edge/rates.py
    assert ws_tables["limits_table"] == ledger
    val_tables = _table_actions(val)
    assert "connections_table" not in val_tables and "sessions_table" not in val_tables
    assert val_tables["hosts_table"] == {"dynamodb:Scan"}
    assert val_tables["lectures_table"] == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert val_tables["limits_table"] == ledger
    sweeper_tables = _table_actions(sweeper)
    assert set(sweeper_tables) == {"connections_table", "lectures_table", "sessions_table", "limits_table"}
    # Overdue questions: it finds them (Query on the sweep index) and takes their final over
    # (UpdateItem), nothing more. No function scans a table.
    assert sweeper_tables["connections_table"] == {"dynamodb:UpdateItem"}
    assert sweeper_tables["sessions_table"] == {"dynamodb:GetItem", "dynamodb:DeleteItem"}
    assert "dynamodb:PutItem" not in sweeper_tables["lectures_table"]
    assert _table_actions(sweeper, index=True) == {
        "connections_table": {"dynamodb:Query"},
        "lectures_table": {"dynamodb:Query"},
    }
    queried = [r for r, actions in _actions_by_resource(sweeper).items() if "dynamodb:Query" in actions]
    assert len(queried) == 2 and all(r.endswith(f'"/index/{SWEEP_INDEX}"]]}}') for r in queried), queried
    for statements in (ws, val):
        assert not _table_actions(statements, index=True)
    for statements in (ws, val, sweeper):
        scans = [s for s in statements if "dynamodb:Scan" in _flat(s["Action"])]
        # Only the host registry is scanned (edge/affinity.py), and only by those who hand off work.
        assert all("StateHosts" in _flat(s["Resource"]) for s in scans), scans
        assert len(scans) == (0 if statements is sweeper else 1), scans

    # Removing a lecture (deleteLecture, the sweeper): delete what was made from it and its
    # sessions' answers and clips (issue 18), list only segments/ and responses/.
    for statements in (ws, sweeper):
        deletes = [s for s in statements if s["Action"] == "s3:DeleteObject"]
        assert len(deletes) == 1
        deleted = _flat(deletes[0]["Resource"])
        for prefix in (
            prefixes.lectures,
            prefixes.transcripts,
            prefixes.segments,
            prefixes.queries,
            prefixes.responses,
        ):
            assert f"/{prefix}*" in deleted
        (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
        assert listing["Condition"] == {
            "StringLike": {"s3:prefix": [f"{prefixes.segments}*", f"{prefixes.responses}*"]}
        }
    assert not [s for s in val if s["Action"] == "s3:ListBucket"]
    # The handler reads query uploads (checks them) and lectures (getLectureAudio presigns a GET).
    got = "".join(_flat(s["Resource"]) for s in ws if "s3:GetObject" in _flat(s["Action"]))
    assert f"/{prefixes.lectures}*" in got and f"/{prefixes.queries}*" in got
    assert f"/{prefixes.transcripts}" not in got and f"/{prefixes.responses}" not in got

    assert "s3:DeleteObject" in _flat([s["Action"] for s in val])
    # The validator promotes an accepted lecture (its pending tag), under lectures/ only.
    (tagging,) = [s for s in val if "s3:PutObjectTagging" in _flat(s["Action"])]
    assert f"/{prefixes.lectures}*" in _flat(tagging["Resource"]) and "/queries/" not in _flat(
        tagging["Resource"]
    )
    assert not [s for s in ws + sweeper if "s3:PutObjectTagging" in _flat(s["Action"])]
    # The intake switch: GetParameter on that one parameter, by the handler only.
    (reads,) = [s for s in ws if s["Action"] == "ssm:GetParameter"]
    assert "parameter/synapscribe/dev/intake" in _flat(reads["Resource"]) or "Intake" in _flat(
        reads["Resource"]
    )
    assert not [s for s in val + sweeper if "ssm:" in _flat(s["Action"])]
    assert '"s3:PutObject"' not in _flat([s["Action"] for s in val])
    for statement in ws + val + sweeper:
        resources = _flat(statement["Resource"])
        # Describe* of Auto Scaling takes no resource (Service Authorization Reference): warming's
        # read of the fleet's size (test_fleet_scaling.py checks what the handler may change).
        if statement["Action"] != "autoscaling:DescribeAutoScalingGroups":
            assert '"*"' not in resources, statement
        if statement["Action"] == "s3:PutObject":
            assert f"/{prefixes.lectures}*" in resources and f"/{prefixes.queries}*" in resources
            assert f"/{prefixes.responses}" not in resources
        if "execute-api:ManageConnections" in _flat(statement["Action"]):
            # POST (send a message) on this stage only: no GET or DELETE of connections.
            assert resources.endswith('/prod/POST/@connections/*"]]}'), resources
    assert sum("execute-api:ManageConnections" in _flat(s["Action"]) for s in ws + val + sweeper) == 3


def test_the_intake_switch_parameter_starts_open(synth: Synthesized) -> None:
    (param,) = resources_of(synth.templates["api"], "AWS::SSM::Parameter").values()
    props = param["Properties"]
    assert props["Name"] == f"/synapscribe/{synth.platform.config.name}/intake"
    assert json.loads(props["Value"]) == {"uploads": "open", "questions": "open"}
    assert props["Type"] == "String"


def test_every_table_is_granted_to_some_function(synth: Synthesized) -> None:
    """A new table (store.TABLE_KEYS) must be named in FUNCTION_TABLE_ACTIONS, or no Lambda may use it."""
    from synapscribe_cdk.stacks.api_grants import FUNCTION_TABLE_ACTIONS

    named = {field for tables in FUNCTION_TABLE_ACTIONS.values() for field in tables}
    assert set(TABLE_KEYS) <= named


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
    assert len(descriptions) == 7  # and the two request-rate alarms (test_cost_guard.py)
    assert sum("function raised errors" in d for d in descriptions) == 3
    assert sum("gave up on an event" in d for d in descriptions) == 1
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
