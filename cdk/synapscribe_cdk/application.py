"""Builds the whole app: the stacks in dependency order, the environment and the nag checks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Stack, Tags
from aws_cdk import aws_s3 as s3
from synapscribe.platform import PlatformConfig, load_platform

from synapscribe_cdk import nag
from synapscribe_cdk.config import (
    ENV_KEY,
    ENVIRONMENTS_KEY,
    IMAGE_PIPELINE_KEY,
    ZONES_KEY,
    ConfigError,
    EnvironmentConfig,
    load_environment,
    load_image_pipeline,
)
from synapscribe_cdk.constructs.log_groups import retain_helper_function_logs
from synapscribe_cdk.stacks.account import STACK_NAME as ACCOUNT_STACK
from synapscribe_cdk.stacks.account import AccountStack
from synapscribe_cdk.stacks.api import ApiStack
from synapscribe_cdk.stacks.compute import ComputeStack
from synapscribe_cdk.stacks.data import DataStack
from synapscribe_cdk.stacks.identity import IdentityStack
from synapscribe_cdk.stacks.image_pipeline import STACK_NAME as IMAGE_PIPELINE_STACK
from synapscribe_cdk.stacks.image_pipeline import ImagePipelineStack
from synapscribe_cdk.stacks.network import NetworkStack
from synapscribe_cdk.stacks.page import PageContentStack, PageHostingStack

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = REPO_ROOT / "cdk.json"


def default_context() -> dict[str, Any]:
    """cdk.json's context: the CLI passes it itself, `python cdk/app.py` and the tests need it."""
    context = json.loads(CDK_JSON.read_text()).get("context", {})
    if not isinstance(context, dict):
        raise ConfigError(f"{CDK_JSON}: 'context' must be an object")
    return context


#: `-c region=R` names the region outright.
REGION_KEY = "region"


def target_environment(app: App) -> Environment:
    """Account and region to synthesize for: context `region`, else CDK_DEPLOY_REGION, else
    CDK_DEFAULT_REGION. The CDK CLI sets CDK_DEFAULT_* itself (from AWS_REGION or the profile,
    else us-east-1), overwriting what the caller exported, so a region the operator names must
    come in by context or CDK_DEPLOY_REGION (the CDK developer guide's "Environments" pattern)."""
    region = app.node.try_get_context(REGION_KEY)
    if region is not None and (not isinstance(region, str) or not region):
        raise ConfigError(f"context {REGION_KEY!r} must be a region name, got {region!r}")
    return Environment(
        account=os.environ.get("CDK_DEPLOY_ACCOUNT") or os.environ.get("CDK_DEFAULT_ACCOUNT") or None,
        region=region or os.environ.get("CDK_DEPLOY_REGION") or os.environ.get("CDK_DEFAULT_REGION") or None,
    )


@dataclass
class Platform:
    """The stacks of one environment."""

    config: EnvironmentConfig
    account: AccountStack
    data: DataStack
    network: NetworkStack
    api: ApiStack
    identity: IdentityStack
    compute: ComputeStack
    page_hosting: PageHostingStack
    page_content: PageContentStack
    image_pipeline: ImagePipelineStack

    def stacks_by_key(self) -> dict[str, Stack]:
        return {
            "account": self.account,
            "data": self.data,
            "network": self.network,
            "api": self.api,
            "identity": self.identity,
            "compute": self.compute,
            "page_hosting": self.page_hosting,
            "page_content": self.page_content,
            "image_pipeline": self.image_pipeline,
        }

    def stacks(self) -> list[Stack]:
        return list(self.stacks_by_key().values())


def build_config(app: App) -> EnvironmentConfig:
    """The environment named by context `env`, with `-c zones=` over its zones."""
    return load_environment(
        app.node.try_get_context(ENVIRONMENTS_KEY),
        app.node.try_get_context(ENV_KEY),
        app.node.try_get_context(ZONES_KEY),
    )


def build_image_pipeline(app: App, platform: PlatformConfig, env: Environment) -> ImagePipelineStack:
    """The account's image pipeline: every environment of cdk.json in order (images go through
    them one after the other), its verify network in the first environment's zones."""
    environments_context = app.node.try_get_context(ENVIRONMENTS_KEY)
    if not isinstance(environments_context, dict):
        raise ConfigError(f"context {ENVIRONMENTS_KEY!r} must be a mapping")
    environments = [load_environment(environments_context, name) for name in environments_context]
    if env.region is None:
        raise ConfigError("set CDK_DEPLOY_REGION (or -c region=R): the verify VPC lists its zones by name")
    return ImagePipelineStack(
        app,
        IMAGE_PIPELINE_STACK,
        settings=load_image_pipeline(app.node.try_get_context(IMAGE_PIPELINE_KEY)),
        environments=environments,
        platform=platform,
        zones=environments[0].zones_in(env.region),
        env=env,
    )


def build(app: App, platform: PlatformConfig | None = None) -> Platform:
    """Add the environment named by context `env` to `app`, with AwsSolutions checks."""
    platform = platform or load_platform()
    config = build_config(app)
    env = target_environment(app)
    prefix = f"SynapScribe-{config.name}"
    # Shared by every environment of the account and region (the same stack whichever builds it).
    account = AccountStack(app, ACCOUNT_STACK, env=env)
    image_pipeline = build_image_pipeline(app, platform, env)
    page_hosting = PageHostingStack(app, f"{prefix}-PageHosting", config=config, env=env)
    data = DataStack(app, f"{prefix}-Data", config=config, platform=platform, env=env)
    # The page uploads lectures with presigned POSTs and plays answers from the bucket.
    data.bucket.add_cors_rule(
        allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
        allowed_origins=[page_hosting.origin],
        allowed_headers=["*"],
        exposed_headers=["ETag"],
        max_age=3000,
    )
    network = NetworkStack(app, f"{prefix}-Network", config=config, platform=platform, env=env)
    data.alarm_topic.notify(network.nat_alarms)
    api = ApiStack(
        app,
        f"{prefix}-Api",
        config=config,
        platform=platform,
        data=data,
        network=network,
        repo_root=REPO_ROOT,
        env=env,
    )
    # The stage's access logs need the account's API Gateway logging role to exist first.
    api.add_stack_dependency(account)
    identity = IdentityStack(app, f"{prefix}-Identity", config=config, api=api, env=env)
    compute = ComputeStack(
        app,
        f"{prefix}-Compute",
        config=config,
        platform=platform,
        data=data,
        network=network,
        api=api,
        env=env,
    )
    page_content = PageContentStack(
        app,
        f"{prefix}-PageContent",
        config=config,
        platform=platform,
        hosting=page_hosting,
        websocket_url=api.websocket_url,
        identity_pool_id=identity.pool.identity_pool_id,
        guest_role_arn=identity.pool.unauthenticated_role.role_arn,
        lecture_bucket_name=data.bucket.bucket_name,
        env=env,
    )
    result = Platform(
        config=config,
        account=account,
        data=data,
        network=network,
        api=api,
        identity=identity,
        compute=compute,
        page_hosting=page_hosting,
        page_content=page_content,
        image_pipeline=image_pipeline,
    )
    for stack in result.stacks():
        Tags.of(stack).add("project", "synapscribe")
        if stack not in (account, image_pipeline):  # one stack for every environment: no environment tag
            Tags.of(stack).add("environment", config.name)
    for stack in result.stacks():
        retain_helper_function_logs(stack, config.log_retention_days)
    nag.add_checks(app)
    return result
