"""Synthesizes the CDK app once per session (dev context from cdk.json, fake account/region; prod
with the real CDK CLI) and lints both environments' templates once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cfn_linters import LintRun, assembly_templates, lint
from synth_support import REPO, Synthesized, cdk_env


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
        # Path metadata on, as the CDK CLI synthesizes (cfn-lint also tells CDK templates by it).
        app = App(context={**default_context(), "aws:cdk:enable-path-metadata": True}, outdir=str(outdir))
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


CDK = REPO / "node_modules" / ".bin" / "cdk"


@pytest.fixture(scope="session")
def prod_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real `cdk synth` (npm aws-cdk CLI) of the prod environment, offline."""
    if not CDK.exists():
        pytest.fail(f"{CDK} is missing: run scripts/setup (it installs the aws-cdk CLI)")
    out = tmp_path_factory.mktemp("cli") / "cdk.out"
    env = cdk_env()
    env.update(CDK_DISABLE_CLI_TELEMETRY="true", CI="true")
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "--no-version-reporting", "-o", str(out), "-c", "env=prod"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Successfully synthesized" in result.stderr + result.stdout
    return out


@pytest.fixture(scope="session")
def assemblies(synth: Synthesized, prod_assembly: Path) -> dict[str, Path]:
    """The cloud assembly of each environment: dev from the in-process synth, prod from the CLI's."""
    return {"dev": synth.outdir, "prod": prod_assembly}


@pytest.fixture(scope="session")
def lint_run(assemblies: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> LintRun:
    """cfn-lint and checkov over every stack template of both environments, once per session."""
    templates, regions = assembly_templates(assemblies)
    return lint(templates, sorted(regions), tmp_path_factory.mktemp("lint"))
