"""What each of the API stack's functions may do: its DynamoDB calls by table and index, its
objects, @connections, the fleet's group and the intake switch, granted least privilege."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from synapscribe.platform import PlatformConfig
from synapscribe.store import SWEEP_INDEX

from synapscribe_cdk.constructs import permissions
from synapscribe_cdk.nag import acknowledge, wildcard_findings
from synapscribe_cdk.stacks.data import DataStack

_ITEM = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
_LEDGER = ("dynamodb:GetItem", "dynamodb:UpdateItem")
#: The DynamoDB calls each function makes, by table (store.TABLE_KEYS field), from
#: synapscribe.store, quotas.py (a ledger is read, then updated on condition; a lecture upload's
#: ledger update and pending item go in one TransactWriteItems, which IAM authorizes as the
#: UpdateItem and PutItem inside it) and edge/rates.py (conditional updates). Nobody scans: the
#: sweeper finds stuck lectures and overdue questions with a Query on the sparse index
#: (FUNCTION_INDEX_ACTIONS), and takes an overdue final over with one conditional UpdateItem
#: (final_claim.take_over). A table missing here gets no grant (test_api_stack checks every
#: table is named). The host registry is read whole (a Scan of tens of items: edge/affinity.py)
#: by the two functions that hand work to AgentCore, and written by the hosts alone.
FUNCTION_TABLE_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "websocket_handler": {
        "connections_table": _ITEM,
        "lectures_table": _ITEM,
        # UpdateItem: a question clip is recorded on its session (deleteLecture deletes it).
        "sessions_table": _ITEM,
        "limits_table": _LEDGER,
        "hosts_table": ("dynamodb:Scan",),
    },
    "validation": {
        "lectures_table": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
        "limits_table": _LEDGER,
        "hosts_table": ("dynamodb:Scan",),
    },
    "sweeper": {
        "connections_table": ("dynamodb:UpdateItem",),
        "lectures_table": ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        # GetItem: a removed lecture's sessions name their question clips (edge/removal.py).
        "sessions_table": ("dynamodb:GetItem", "dynamodb:DeleteItem"),
        "limits_table": _LEDGER,
    },
}
#: The calls each function makes on a table's sweep index (store.SWEEP_INDEX), by table: the
#: index's own ARN (`<table>/index/<name>`), so Query reaches neither the table nor another index.
FUNCTION_INDEX_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "sweeper": {"connections_table": ("dynamodb:Query",), "lectures_table": ("dynamodb:Query",)},
}


def table_statements(
    actions_by_table: dict[str, tuple[str, ...]], tables: dict[str, dynamodb.Table]
) -> list[iam.PolicyStatement]:
    """One statement per table the function uses (tables the app does not have are skipped)."""
    return [
        permissions.tables(actions, [tables[field].table_arn])
        for field, actions in actions_by_table.items()
        if field in tables
    ]


def index_statements(
    actions_by_table: dict[str, tuple[str, ...]], tables: dict[str, dynamodb.Table]
) -> list[iam.PolicyStatement]:
    """One statement per table whose sweep index the function queries."""
    return [
        permissions.tables(actions, [f"{tables[field].table_arn}/index/{SWEEP_INDEX}"])
        for field, actions in actions_by_table.items()
        if field in tables
    ]


def grant_edge_functions(
    stack: Stack,
    data: DataStack,
    platform: PlatformConfig,
    fleet_group: str,
    connections: iam.PolicyStatement,
    intake_parameter_arn: str,
    functions: dict[str, lambda_.Function],
) -> None:
    """Least privilege: the handler presigns uploads and a lecture's GET (getLectureAudio), checks query uploads, keeps its items
    and deletes a lecture with what was made from it (deleteLecture); the validator reads,
    and may delete, uploaded lectures and updates their status; the sweeper resumes stuck
    lectures, rejects or removes the hopeless ones (edge/removal.py: it lists the lecture's
    segments, then deletes its objects). All push to clients (@connections POST). Table
    actions are the calls each function makes (FUNCTION_TABLE_ACTIONS)."""
    prefixes = platform.storage.prefixes
    bucket_arn = data.imported_bucket_arn(stack)
    # A lecture goes with its sessions' answers and question clips (edge/removal.py).
    made = [
        prefixes.lectures,
        prefixes.transcripts,
        prefixes.segments,
        prefixes.responses,
        prefixes.queries,
    ]
    removal = [
        permissions.objects(["s3:DeleteObject"], bucket_arn, made),
        permissions.list_under(bucket_arn, [prefixes.segments, prefixes.responses]),
    ]
    grants = {
        "websocket_handler": [
            permissions.objects(["s3:PutObject"], bucket_arn, [prefixes.lectures, prefixes.queries]),
            # queries: a query upload is checked; lectures: getLectureAudio presigns a GET of one.
            permissions.objects(["s3:GetObject"], bucket_arn, [prefixes.queries, prefixes.lectures]),
            *removal,
            connections,
            *fleet_start_statements(stack, fleet_group),
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[intake_parameter_arn]),
        ],
        "validation": [
            # PutObjectTagging: an accepted lecture is promoted (its pending tag replaced).
            permissions.objects(
                ["s3:GetObject", "s3:DeleteObject", "s3:PutObjectTagging"],
                bucket_arn,
                [prefixes.lectures],
            ),
            connections,
        ],
        # DescribeAutoScalingGroups: the sweeper accrues the fleet's GPU host-hours.
        "sweeper": [*removal, connections, fleet_start_statements(stack, fleet_group)[1]],
    }
    for name, statements in grants.items():
        statements += table_statements(FUNCTION_TABLE_ACTIONS[name], data.tables)
        statements += index_statements(FUNCTION_INDEX_ACTIONS.get(name, {}), data.tables)
        fn = functions[name]
        for statement in statements:
            fn.add_to_role_policy(statement)
        assert fn.role is not None
        findings = wildcard_findings(stack, [r for s in statements for r in s.resources])
        if findings:
            acknowledge(
                fn.role,
                "AwsSolutions-IAM5",
                "Object wildcards stop at this platform's key prefixes, and @connections at this API's "
                "stage: the ids under them are made at run time. The fleet's group ARN holds a "
                "UUID made at its creation (its name is fixed); DescribeAutoScalingGroups takes no "
                "resource (Service Authorization Reference, Amazon EC2 Auto Scaling).",
                findings,
            )


def fleet_start_statements(scope: Construct, group_name: str) -> list[iam.PolicyStatement]:
    """What warming from zero needs (edge/warming.py): read the group's size, set it on that one
    group. An Auto Scaling group's ARN is autoScalingGroup:<uuid>:autoScalingGroupName/<name>, the
    UUID made when the group is created; DescribeAutoScalingGroups supports no resource-level
    permission (Service Authorization Reference, "Actions defined by Amazon EC2 Auto Scaling")."""
    stack = Stack.of(scope)
    group_arn = stack.format_arn(
        service="autoscaling",
        resource="autoScalingGroup",
        resource_name=f"*:autoScalingGroupName/{group_name}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    return [
        iam.PolicyStatement(actions=["autoscaling:SetDesiredCapacity"], resources=[group_arn]),
        iam.PolicyStatement(actions=["autoscaling:DescribeAutoScalingGroups"], resources=["*"]),
    ]
