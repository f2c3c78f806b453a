"""cfn-lint and checkov over synthesized templates, and the acknowledgements the templates carry.

cfn-lint is a pinned dev dependency of the project's venv. checkov's pins conflict with the
project's (see checkov-requirements.txt), so it runs from its own environment, created once from
that file and cached outside the checkout (about 300 MB, a minute or two to create).

Each template is linted twice in one run of each tool: as synthesized, and (when it carries
acknowledgements) with them stripped, so a test can tell both "nothing is left unacknowledged" and
"every acknowledgement still suppresses a finding".
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("SYNAPSCRIBE_CACHE_DIR", Path.home() / ".cache" / "synapscribe"))
CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# The Metadata keys the linters read (and nag.acknowledge_cfn_lint / acknowledge_checkov write).
CFN_LINT_KEY = "cfn-lint"
CHECKOV_KEY = "checkov"
AS_SYNTHESIZED, STRIPPED = "synthesized", "stripped"


@dataclass(frozen=True, order=True)
class Finding:
    tool: str  # "cfn-lint" or "checkov"
    template: str  # file name, e.g. "SynapScribe-dev-Api.template.json"
    resource: str  # logical id ("" when not on a resource)
    check: str  # e.g. "W3005", "CKV_AWS_117"


@dataclass
class LintRun:
    """Findings of the templates as synthesized and with their acknowledgements stripped."""

    templates: list[str]
    findings: dict[str, set[Finding]]  # AS_SYNTHESIZED / STRIPPED -> findings
    checkov_skipped: set[Finding]  # what checkov reported as skipped (as synthesized)
    checkov_summary: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def checkov_venv() -> Path:
    """The cached environment with the pinned checkov (keyed by the requirements' hash)."""
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    root = Path(os.environ.get("SYNAPSCRIBE_CHECKOV_VENV", CACHE_DIR / f"checkov-venv-{digest}"))
    root.parent.mkdir(parents=True, exist_ok=True)
    with root.with_name(root.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if not (root / "bin" / "checkov").exists():
            partial = root.with_name(root.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True, timeout=300)
            pip = [str(partial / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
            # --no-deps: the file is the whole environment, so nothing is resolved anew.
            subprocess.run(
                [*pip, "install", "--no-deps", "-r", str(CHECKOV_REQUIREMENTS)],
                check=True, timeout=1200, capture_output=True,
            )  # fmt: skip
            partial.rename(root)
    return root


def assembly_templates(assemblies: dict[str, Path]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Every stack template of each cloud assembly (environment -> directory), named
    "<environment>.<template file>", and the regions the stacks deploy to."""
    templates: dict[str, dict[str, Any]] = {}
    regions = set()
    for env, outdir in assemblies.items():
        manifest = json.loads((outdir / "manifest.json").read_text())
        for artifact in manifest["artifacts"].values():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            file = artifact["properties"]["templateFile"]
            templates[f"{env}.{file}"] = json.loads((outdir / file).read_text())
            regions.add(artifact["environment"].rsplit("/", 1)[-1])
    return templates, regions


def acknowledgements(name: str, template: dict[str, Any]) -> dict[Finding, str]:
    """Every acknowledgement in `template`'s resources' Metadata, with its reason."""
    found: dict[Finding, str] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        metadata = resource.get("Metadata", {})
        lint = metadata.get(CFN_LINT_KEY, {})
        reasons = lint.get("reasons", {})
        for rule in lint.get("config", {}).get("ignore_checks", []):
            found[Finding("cfn-lint", name, logical_id, rule)] = str(reasons.get(rule, ""))
        for skip in metadata.get(CHECKOV_KEY, {}).get("skip", []):
            found[Finding("checkov", name, logical_id, skip["id"])] = str(skip.get("comment", ""))
    return found


def stripped(template: dict[str, Any]) -> dict[str, Any]:
    """`template` without the linters' acknowledgements."""
    bare = copy.deepcopy(template)
    for resource in bare.get("Resources", {}).values():
        metadata = resource.get("Metadata", {})
        metadata.pop(CFN_LINT_KEY, None)
        metadata.pop(CHECKOV_KEY, None)
    return bare


def lint(templates: dict[str, dict[str, Any]], regions: list[str], workdir: Path) -> LintRun:
    """Run cfn-lint and checkov (side by side) over `templates` (file name -> template)."""
    dirs = {kind: workdir / kind for kind in (AS_SYNTHESIZED, STRIPPED)}
    for d in dirs.values():
        d.mkdir(parents=True)
    for name, template in templates.items():
        (dirs[AS_SYNTHESIZED] / name).write_text(json.dumps(template, indent=1))
        if acknowledgements(name, template):
            (dirs[STRIPPED] / name).write_text(json.dumps(stripped(template), indent=1))
    venv = checkov_venv()
    started = time.monotonic()
    # The script through the environment's python: its #! line names the build directory.
    checkov_argv = [str(venv / "bin" / "python"), str(venv / "bin" / "checkov"), "--framework", "cloudformation",
                    "--directory", str(workdir), "--output", "json", "--skip-download"]  # fmt: skip
    files = sorted(str(p) for d in dirs.values() for p in d.glob("*.json"))
    checkov = subprocess.Popen(
        checkov_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_offline_env()
    )
    try:  # cfn-lint meanwhile (two cores)
        cfn_lint = subprocess.run(
            [str(CFN_LINT), "--format", "json", "--regions", *regions, "--", *files],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        lint_seconds = time.monotonic() - started
        out, err = checkov.communicate(timeout=600)
    finally:
        if checkov.poll() is None:
            checkov.kill()
            checkov.communicate()
    checkov_seconds = time.monotonic() - started
    # cfn-lint exits with a bit mask of the levels it found (2 error, 4 warning, 8 informational);
    # any other code (a traceback exits 1) means it did not run.
    if cfn_lint.returncode & 1 or cfn_lint.returncode >= 16 or not cfn_lint.stdout.strip():
        raise AssertionError(f"cfn-lint failed (exit {cfn_lint.returncode}):\n{cfn_lint.stderr[-3000:]}")
    if checkov.returncode not in (0, 1) or not out.strip():
        raise AssertionError(f"checkov failed (exit {checkov.returncode}):\n{err[-3000:]}")
    findings: dict[str, set[Finding]] = {AS_SYNTHESIZED: set(), STRIPPED: set()}
    for match in json.loads(cfn_lint.stdout):
        kind, finding = _cfn_lint_finding(match)
        findings[kind].add(finding)
    report = json.loads(out)
    for result in report["results"].get("failed_checks", []):
        kind, finding = _checkov_finding(result)
        findings[kind].add(finding)
    skipped = {_checkov_finding(r)[1] for r in report["results"].get("skipped_checks", [])}
    # A template without acknowledgements was linted once: its findings are the same stripped.
    unchanged = set(templates) - {p.name for p in dirs[STRIPPED].glob("*.json")}
    findings[STRIPPED] |= {f for f in findings[AS_SYNTHESIZED] if f.template in unchanged}
    return LintRun(
        templates=sorted(templates),
        findings=findings,
        checkov_skipped=skipped,
        checkov_summary=report["summary"],
        seconds={"cfn-lint": lint_seconds, "checkov": checkov_seconds},
    )


def _offline_env() -> dict[str, str]:
    # No API key: checkov reports locally and sends nothing to its platform.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "CKV_", "PRISMA_"))}
    env.update(LOG_LEVEL="WARNING")
    return env


def _cfn_lint_finding(match: dict[str, Any]) -> tuple[str, Finding]:
    path = Path(match["Filename"])
    where = match["Location"].get("Path") or []
    resource = str(where[1]) if len(where) > 1 and where[0] == "Resources" else ""
    return path.parent.name, Finding("cfn-lint", path.name, resource, match["Rule"]["Id"])


def _checkov_finding(result: dict[str, Any]) -> tuple[str, Finding]:
    path = Path(result["file_path"])  # relative to --directory: "/<kind>/<name>"
    _type, _, logical_id = result["resource"].partition(".")
    return path.parent.name, Finding("checkov", path.name, logical_id, result["check_id"])


def describe(findings: set[Finding]) -> str:
    return "\n".join(f"{f.tool} {f.check} {f.template} {f.resource}" for f in sorted(findings))
