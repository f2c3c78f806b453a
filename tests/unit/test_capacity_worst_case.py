"""`synapscribe capacity --worst-case`: each line recomputed here from the ceilings and the list
prices, and the defaults keep dev under $300 and prod under $3,000 a month (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synapscribe.platform import load_platform
from synapscribe_ops.capacity.plan import load_price_table
from synapscribe_ops.capacity.worstcase import (
    EnvironmentCeilings,
    WorstCaseError,
    load_environment,
    scheduled_host_hours,
    worst_case,
)

REPO = Path(__file__).resolve().parents[2]
CDK_JSON = REPO / "cdk.json"
LIMITS = {"dev": 300.0, "prod": 3000.0}


def _case(env_name: str) -> tuple[EnvironmentCeilings, dict[str, float]]:
    env = load_environment(CDK_JSON, env_name)
    table = load_price_table()
    case = worst_case(
        env, table.worst_case, table.instances[env.instance_types[0]].spot_usd_per_hour, load_platform()
    )
    return env, {line.item: line.usd for line in case.lines}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_each_line_is_the_ceilings_times_the_prices(env_name: str) -> None:
    env, lines = _case(env_name)
    table = load_price_table()
    p, c, platform = table.worst_case, env.ceilings, load_platform()
    month = 30 * 86400
    storage_gb = c.daily_upload_bytes / 1e9 * platform.storage.retention_days + (
        c.daily_questions * p.answer_audio_bytes / 1e9 * platform.storage.ephemeral_days
    )
    assert lines["storage"] == pytest.approx(storage_gb * p.s3_storage_usd_per_gb_month)
    posts = (c.daily_lectures + c.daily_questions) * p.posts_per_upload_policy * 30
    gets = c.daily_questions * p.answer_audio_parts * p.fetches_per_answer_link * 30
    assert lines["requests"] == pytest.approx(
        posts * p.s3_put_post_usd_per_1000 / 1000 + gets * p.s3_get_usd_per_1000 / 1000
    )
    egress_gb = c.daily_questions * p.answer_audio_bytes * p.fetches_per_answer_link * 30 / 1e9
    assert lines["egress"] == pytest.approx(egress_gb * p.egress_usd_per_gb)
    messages = env.throttle.rate_limit * month
    validations = c.daily_lectures * p.posts_per_upload_policy * 30
    gb = env.lambda_memory_mib / 1024
    assert lines["Lambda"] == pytest.approx(
        (messages + validations) * p.lambda_usd_per_million_requests / 1e6
        + (messages * p.handler_ms_per_message / 1000 + validations * p.validator_seconds_per_post)
        * gb
        * p.lambda_usd_per_gb_second
    )
    connection_minutes = env.throttle.rate_limit * 600 * month / 60
    assert lines["API Gateway"] == pytest.approx(
        messages * p.websocket_usd_per_million_messages / 1e6
        + connection_minutes * p.websocket_usd_per_million_connection_minutes / 1e6
    )
    assert lines["DynamoDB"] == pytest.approx(
        messages
        * (
            p.table_writes_per_message * p.dynamodb_usd_per_million_writes
            + p.table_reads_per_message * p.dynamodb_usd_per_million_reads
        )
        / 1e6
    )
    cooldown = env.scaling.scale_in_cooldown_seconds if env.scaling else 0
    hours = (
        max(c.daily_gpu_host_hours, scheduled_host_hours(env.capacity))
        + env.capacity.max * (platform.sweeper.interval_seconds + cooldown) / 3600
    )
    spot = table.instances[env.instance_types[0]].spot_usd_per_hour
    assert lines["GPU"] == pytest.approx(hours * 30 * spot)
    assert set(lines) == {"storage", "requests", "egress", "Lambda", "API Gateway", "DynamoDB", "GPU"}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_defaults_keep_the_worst_month_under_the_operators_figure(env_name: str) -> None:
    _env, lines = _case(env_name)
    assert sum(lines.values()) < LIMITS[env_name], lines


def test_a_ceiling_raised_raises_its_lines(tmp_path: Path) -> None:
    doc = json.loads(CDK_JSON.read_text())
    doc["context"]["synapscribe:environments"]["dev"]["ceilings"]["daily_upload_bytes"] *= 10
    raised = tmp_path / "cdk.json"
    raised.write_text(json.dumps(doc))
    table, platform = load_price_table(), load_platform()
    before = worst_case(load_environment(CDK_JSON, "dev"), table.worst_case, 0.485, platform)
    after = worst_case(load_environment(raised, "dev"), table.worst_case, 0.485, platform)
    assert after.lines[0].usd > 9 * before.lines[0].usd * 0.9 and after.total_usd > before.total_usd


def test_scheduled_hours_follow_the_night_and_morning_actions() -> None:
    env = load_environment(CDK_JSON, "prod")
    # 06:00 to 23:00 at `desired`, `min` the other 7 hours.
    assert scheduled_host_hours(env.capacity) == 17 * env.capacity.desired + 7 * env.capacity.min


def test_an_unknown_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(WorstCaseError, match=r"no environment .staging. .*\(it has dev, prod\)"):
        load_environment(CDK_JSON, "staging")


def test_the_command_prints_every_line_with_its_arithmetic() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "synapscribe.cli", "capacity", "--worst-case", "--env", "prod", "--cdk-json", str(CDK_JSON)],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout  # fmt: skip
    for item in ("storage", "requests", "egress", "Lambda", "API Gateway", "DynamoDB", "GPU", "total"):
        assert f"  {item}" in out
    assert "x $0.023/GB-month" in out and "(g5.2xlarge spot)" in out
