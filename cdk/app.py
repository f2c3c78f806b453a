#!/usr/bin/env python3
"""The CDK app's entry point (cdk.json: `.venv/bin/python cdk/app.py`).

Choose the environment with `-c env=dev|prod`; account and region come from CDK_DEFAULT_ACCOUNT
and CDK_DEFAULT_REGION (or CDK_DEPLOY_ACCOUNT / CDK_DEPLOY_REGION).
"""

from __future__ import annotations

import os
import sys

# jsii's Node version banners are noise on every synth (Node 20 still works).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from synapscribe_cdk.application import build, default_context
from synapscribe_cdk.bundling import BundlingError
from synapscribe_cdk.config import ConfigError


def main() -> int:
    try:
        # cdk.json's context is the default; the CLI's (-c, cdk.json, cdk.context.json) wins.
        app = App(context=default_context())
        build(app)
    except (ConfigError, BundlingError) as exc:
        print(f"cdk/app.py: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
