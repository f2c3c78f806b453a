"""Synthesizes the CDK app once per session (dev context from cdk.json, fake account/region)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from synth_support import Synthesized, cdk_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).is_relative_to(here):
            item.add_marker(pytest.mark.cdk)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    from aws_cdk import App
    from synapscribe_cdk.application import build, default_context

    outdir = tmp_path_factory.mktemp("cdk.out")
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in cdk_env().items() if k.startswith(("AWS_", "CDK_"))})
    try:
        app = App(context=default_context(), outdir=str(outdir))
        platform = build(app)
        assembly = app.synth()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    templates = {
        key: assembly.get_stack_by_name(stack.stack_name).template
        for key, stack in platform.stacks_by_key().items()
    }
    yield Synthesized(outdir=outdir, platform=platform, templates=templates)
