"""The operator's guide cannot drift from the code.

Every shell command in the guide's code blocks is checked: offline commands are run, commands
that need AWS are checked against the real parser of the tool (argparse for `synapscribe`,
botocore's service models for `aws`, the CDK CLI's own `--help`, `make -n`, the scripts' `--help`),
and the numbers the guide quotes are recomputed from platform.yaml and the capacity planner.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name
from synapscribe.cli import command_parser, commands
from synapscribe.edge.intake import parameter_name, parse_value
from synapscribe.platform import load_platform
from synapscribe_ops.capacity.plan import MIB, MODEL_PRESETS, load_price_table, plan_capacity
from synapscribe_ops.capacity.worstcase import load_environment, worst_case

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDE = DOCS / "operators-guide.md"
BIN = Path(sys.executable).parent
SHELL_LANGS = {"sh", "bash", "shell", "console"}
#: Subcommands that need nothing from AWS and finish in a second: the test runs them.
RUN_OFFLINE = {"platform", "capacity", "contract"}
#: The README's one set-up step for every documented command: `synapscribe` is on PATH after it.
ACTIVATE = ". .venv/bin/activate"
AWS_GLOBAL_FLAGS = {
    "--region",
    "--output",
    "--query",
    "--profile",
    "--no-cli-pager",
    "--endpoint-url",
    "--debug",
    "--cli-input-json",
}
AWS_PAGINATION_FLAGS = {"--max-items", "--starting-token", "--page-size", "--no-paginate"}


# ---------------------------------------------------------------------------------------------
# Extraction


def shell_blocks(text: str) -> list[str]:
    blocks = re.findall(r"^```([a-z]*)\n(.*?)^```", text, flags=re.M | re.S)
    return [body for lang, body in blocks if lang in SHELL_LANGS]


def commands_in(text: str) -> list[str]:
    """Every command line: continuations joined, comments and blank lines dropped, `$ ` stripped."""
    out: list[str] = []
    for body in shell_blocks(text):
        joined = re.sub(r"\s*\\\n\s*", " ", body)
        for raw in joined.splitlines():
            line = raw.strip()
            if line.startswith("$ "):
                line = line[2:]
            line = without_comment(line)
            if line:
                out.append(line)
    return out


def without_comment(line: str) -> str:
    """The line up to a shell comment (a `#` that starts a word outside quotes)."""
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def guide_docs() -> list[Path]:
    guides = sorted(p for p in DOCS.glob("*.md") if p.name != "interfaces.md")
    return [ROOT / "README.md", *guides]


def all_commands() -> list[tuple[str, str]]:
    """(document, command) pairs, each distinct command once."""
    pairs = [(p.name, c) for p in guide_docs() for c in commands_in(p.read_text(encoding="utf-8"))]
    return list(dict.fromkeys(pairs))


def split_command(line: str) -> list[str]:
    """The argv of one command; `VAR=$(cmd)` yields the inner command, leading `VAR=value` are dropped."""
    m = re.fullmatch(r"[A-Z_][A-Z0-9_]*=\$\((.*)\)", line)
    if m:
        line = m.group(1)
    assert not re.search(r"[|;&<>`]", line.replace("&&", "")), f"keep guide commands simple: {line}"
    argv = shlex.split(line)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", argv[0]):
        argv.pop(0)
    assert argv, f"empty command: {line}"
    return argv


def long_flags(argv: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--") and len(a) > 2]


# ---------------------------------------------------------------------------------------------
# Checkers, one per tool


def synapscribe_parser(name: str) -> argparse.ArgumentParser:
    return command_parser(name, exit_on_error=False)[0]


def new_user_env() -> dict[str, str]:
    """A new user's shell: this test's virtual environment is not on PATH (pytest runs from it)."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    ours = {BIN.resolve(), (ROOT / ".venv" / "bin").resolve()}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() not in ours
    )
    return env


def run_as_printed(argv: list[str]) -> str:
    """Run a documented command the way a reader does: in a fresh shell after the README's step."""
    return _run(["bash", "-c", f'{ACTIVATE} && exec "$@"', "bash", *argv], env=new_user_env())


def check_synapscribe(argv: list[str]) -> None:
    args = argv[1:]
    if args == ["--help"]:
        run_as_printed(argv)
        return
    name = args[0]
    assert name in commands(), f"`synapscribe {name}` is not a subcommand ({', '.join(commands())})"
    if "--help" in args or name in RUN_OFFLINE:
        run_as_printed(argv)
        return
    parser = synapscribe_parser(name)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            pytest.fail(
                f"`synapscribe {' '.join(args)}` is refused by its parser (exit {exc.code}): {err.getvalue()}"
            )
        except argparse.ArgumentError as exc:
            pytest.fail(f"`synapscribe {' '.join(args)}` is refused by its parser: {exc}")


@functools.cache
def _botocore() -> botocore.session.Session:
    return botocore.session.get_session()


def check_aws(argv: list[str]) -> None:
    assert len(argv) >= 3, f"aws command without service and operation: {argv}"
    service, op_cli = argv[1], argv[2]
    session = _botocore()
    assert service in session.get_available_services(), f"aws: unknown service {service}"
    model = session.get_service_model(service)
    ops = {xform_name(op, "-"): op for op in model.operation_names}
    assert op_cli in ops, f"aws {service}: unknown operation {op_cli}"
    op = model.operation_model(ops[op_cli])
    members = op.input_shape.members if op.input_shape is not None else {}
    accepted = set(AWS_GLOBAL_FLAGS) | AWS_PAGINATION_FLAGS
    for member, shape in members.items():
        accepted.add("--" + xform_name(member, "-"))
        if shape.type_name == "boolean":
            accepted.add("--no-" + xform_name(member, "-"))
    used = long_flags(argv[3:])
    unknown = [f for f in used if f not in accepted]
    assert not unknown, f"aws {service} {op_cli}: unknown flags {unknown}"
    required = op.input_shape.required_members if op.input_shape is not None else []
    missing = [m for m in required if "--" + xform_name(m, "-") not in used]
    assert not missing, f"aws {service} {op_cli}: missing required {missing}"
    if service == "ssm":
        _check_ssm_names(argv)


def _check_ssm_names(argv: list[str]) -> None:
    ami = load_platform().ami
    channels = [ami.channel(env) for env in ("dev", "prod")]
    known = {ami.legacy_parameter} | {c.current for c in channels} | {c.previous for c in channels}
    environments = json.loads((ROOT / "cdk.json").read_text())["context"]["synapscribe:environments"]
    intake = {parameter_name(env) for env in environments}
    for flag, value in itertools.pairwise(argv):
        if flag in ("--name", "--names") and value.startswith("/"):
            assert value in (*known, *intake), (
                f"SSM parameter {value} is neither an image channel of platform.yaml's ami "
                "nor an environment's intake switch"
            )
    if "put-parameter" in argv and any(v in intake for v in argv):
        value = argv[argv.index("--value") + 1]
        assert parse_value(value) == json.loads(value), f"{value} is not the intake switch's JSON"


@functools.cache
def _cdk_help(sub: str) -> str:
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "the CDK CLI is not installed (scripts/setup installs it)"
    proc = subprocess.run(
        [str(cdk), sub, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"cdk {sub} --help failed: {proc.stderr}"
    return proc.stdout


def check_cdk(argv: list[str]) -> None:
    args = argv[2:] if argv[0] == "npx" else argv[1:]
    sub = args[0]
    help_text = _cdk_help(sub)
    assert f"cdk {sub}" in help_text, f"cdk has no subcommand {sub}"
    accepted = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    for flag in long_flags(args[1:]):
        base = "--" + flag[5:] if flag.startswith("--no-") else flag
        assert flag in accepted or base in accepted, f"cdk {sub}: unknown flag {flag}"
    if sub in ("deploy", "synth", "diff", "destroy"):
        assert (ROOT / "cdk.json").exists(), "cdk.json (the CDK app) is missing"


def check_make(argv: list[str]) -> None:
    targets = [a for a in argv[1:] if not a.startswith("-")]
    for target in targets:
        out = _run(["make", "-n", target])
        # A .PHONY name without a rule "has nothing to be done": that is not a working command.
        assert out.strip() and "Nothing to be done" not in out, f"`make {target}` has no recipe"


def check_script(argv: list[str]) -> None:
    script = ROOT / argv[0]
    assert script.is_file(), f"{argv[0]} does not exist"
    assert script.stat().st_mode & 0o111, f"{argv[0]} is not executable"
    proc = subprocess.run(
        [str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    help_text = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{argv[0]} --help exited {proc.returncode}: {help_text[-500:]}"
    assert help_text.strip() and "unknown option" not in help_text, f"{argv[0]} has no --help: {help_text}"
    for flag in long_flags(argv[1:]):
        assert re.search(rf"{re.escape(flag)}\b", help_text), f"{argv[0]}: --help does not list {flag}"


def check_systemd_tool(argv: list[str]) -> None:
    tool = argv[0]
    if shutil.which(tool):
        help_text = _run([tool, "--help"])
        for flag in long_flags(argv[1:]):
            assert flag in help_text, f"{tool}: unknown flag {flag}"
    units = [v for f, v in itertools.pairwise(argv) if f in ("-u", "--unit")]
    units += [a for a in argv[1:] if a.startswith("synapscribe-")]
    defined = {p.name.removesuffix(".j2") for p in (ROOT / "ansible").rglob("*.service*")}
    for unit in units:
        name = unit if unit.endswith(".service") else unit + ".service"
        assert name in defined, (
            f"{tool}: unit {name} is not installed by the Ansible roles ({sorted(defined)})"
        )


def check_pytest(argv: list[str]) -> None:
    """The venv's pytest against a deployed host (`--hosts ssm://…`): collect only, which needs no
    AWS but parses every option and resolves the `--hosts` backend (testinfra builds it then)."""
    for arg in argv[1:]:
        if not arg.startswith("-") and "://" not in arg:
            assert (ROOT / arg).exists(), f"{argv[0]}: no such path {arg}"
    _run([str(BIN / "pytest"), *argv[1:], "--collect-only", "-q", "-p", "no:cacheprovider"])


def check_activation(line: str) -> None:
    assert line == ACTIVATE, f"the docs' set-up step is `{ACTIVATE}`, not `{line}`"
    assert (ROOT / ".venv" / "bin" / "activate").is_file(), "no .venv (scripts/setup creates it)"
    found = _run(["bash", "-c", f"{ACTIVATE} && command -v synapscribe"], env=new_user_env())
    assert Path(found.strip()).resolve().parent == (ROOT / ".venv" / "bin").resolve(), found


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert proc.returncode == 0, f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check_command(line: str) -> None:
    if line.startswith(". "):
        check_activation(line)
        return
    argv = split_command(line)
    tool = argv[0]
    if tool == "synapscribe":
        check_synapscribe(argv)
    elif tool == "aws":
        check_aws(argv)
    elif tool == "cdk" or (tool == "npx" and argv[1:2] == ["cdk"]):
        check_cdk(argv)
    elif tool == "make":
        check_make(argv)
    elif tool.startswith("scripts/"):
        check_script(argv)
    elif tool in ("systemctl", "journalctl"):
        check_systemd_tool(argv)
    elif tool in (".venv/bin/pytest", "pytest"):
        check_pytest(argv)
    else:
        pytest.fail(f"the guide uses `{tool}`, which this test cannot check: use a checked tool")


# ---------------------------------------------------------------------------------------------
# Tests


def test_the_guide_exists_and_has_its_sections():
    text = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "Architecture",
        "Deploy and first smoke test",
        "Rebuilding the image",
        "Scaling and scale-to-zero",
        "Spot interruptions",
        "Alarms",
        "Moving to 32K context",
        "Known limits",
    ):
        assert re.search(rf"^##+ .*{re.escape(heading)}", text, flags=re.M), f"missing section {heading}"
    assert "```mermaid" in text


def test_the_guide_has_commands():
    assert len(commands_in(GUIDE.read_text(encoding="utf-8"))) >= 15


@pytest.mark.parametrize(("doc", "line"), all_commands(), ids=[c for _, c in all_commands()])
def test_every_guide_command_is_accepted(doc: str, line: str):
    check_command(line)


def test_the_readme_puts_synapscribe_on_path_before_using_it():
    """A fresh clone after `make demo`: `synapscribe` is not on PATH until the README's step."""
    readme = commands_in((ROOT / "README.md").read_text(encoding="utf-8"))
    assert ACTIVATE in readme, f"the README must say `{ACTIVATE}`"
    first_use = next(i for i, c in enumerate(readme) if c.startswith("synapscribe "))
    assert readme.index(ACTIVATE) < first_use, "the README uses `synapscribe` before saying how to get it"
    bare = subprocess.run(
        ["bash", "-c", "command -v synapscribe"],
        capture_output=True,
        text=True,
        env=new_user_env(),
        check=False,
    )
    if bare.returncode == 0:
        pytest.skip(f"a synapscribe outside this checkout is on PATH ({bare.stdout.strip()})")
    check_activation(ACTIVATE)


def test_cdk_outputs_file_is_what_the_smoke_test_reads():
    cmds = [split_command(c) for _, c in all_commands()]
    written = {a[a.index("--outputs-file") + 1] for a in cmds if "--outputs-file" in a}
    read = {a[a.index("--stack-outputs") + 1] for a in cmds if "--stack-outputs" in a}
    assert written, "no `cdk deploy --outputs-file` in the guide"
    assert read, "no `--stack-outputs` in the guide"
    assert read <= written, f"the guide reads {read} but cdk writes {written}"


def expected_figures() -> dict[str, str]:
    """The guide's quoted figures, recomputed from the code."""
    p = load_platform()
    figures: dict[str, str] = {}
    for length in (16384, 32768):
        at = p.with_max_model_len(length)
        k = f"{length // 1024}K"
        figures[f"audio {k}"] = (
            f"{at.max_audio_lecture_seconds} s ({at.max_audio_lecture_seconds / 60:.1f} min)"
        )
        figures[f"transcript {k}"] = (
            f"{at.max_transcript_lecture_seconds} s ({at.max_transcript_lecture_seconds / 60:.1f} min)"
        )
        figures[f"items {k}"] = f"{at.max_audio_items_per_prompt} audio items"
    lim = p.limits
    figures["lecture bytes"] = f"{lim.lecture_max_bytes:,} bytes"
    figures["query bytes"] = f"{lim.query_max_bytes:,} bytes"
    figures["inline bytes"] = f"{lim.inline_audio_max_bytes:,} bytes"
    figures["message bytes"] = f"{lim.message_max_bytes:,} bytes"
    figures["query seconds"] = f"{lim.query_max_seconds} s"
    figures["connection"] = f"{p.sessions.connection_ttl_seconds // 3600} h"
    figures["session ttl"] = f"{p.sessions.ttl_seconds // 86400} days"
    figures["utilization"] = f"{p.vllm.gpu_memory_utilization}"
    figures["max_num_seqs"] = f"max_num_seqs {p.vllm.max_num_seqs}"
    figures["queue"] = f"{p.agentcore.queue_timeout_seconds:g} s"
    plan = plan_capacity(
        MODEL_PRESETS["qwen2.5-omni-3b"], ["g5.2xlarge"], prices=load_price_table(), platform=p
    )
    g5 = plan.instances[0]
    c16, c32 = g5.contexts
    table = load_price_table()
    for env in ("dev", "prod"):
        settings = load_environment(ROOT / "cdk.json", env)
        spot = table.instances[settings.instance_types[0]].spot_usd_per_hour
        figures[f"worst case {env}"] = f"${worst_case(settings, table.worst_case, spot, p).total_usd:,.2f}"
    figures["kv per token"] = f"{plan.kv_bytes_per_token:,} B"
    figures["kv 16K"] = f"{c16.kv_bytes_per_sequence // MIB:,} MiB"
    figures["kv 32K"] = f"{c32.kv_bytes_per_sequence // MIB:,} MiB"
    figures["kv eight"] = f"{c16.kv_bytes_for_max_num_seqs / 1024**3:.2f} GiB"
    figures["fit 16K"] = f"{c16.full_sequences_fit} full 16K sequences"
    figures["fit 32K"] = f"{c32.full_sequences_fit} full 32K sequences"
    return figures


@pytest.mark.parametrize(("name", "figure"), sorted(expected_figures().items()))
def test_the_guide_quotes_the_codes_figures(name: str, figure: str):
    text = " ".join(GUIDE.read_text(encoding="utf-8").split())
    assert figure in text, f"the guide should say {figure!r} ({name})"


def test_no_stale_context_figures():
    text = GUIDE.read_text(encoding="utf-8")
    # The original report's wrong claims must not reappear as facts.
    assert "16K = 25 min" not in text
    assert not re.search(r"\b6 GB\b", text)


def test_extraction_handles_continuations_and_prompts():
    text = (
        "x\n```sh\n$ synapscribe capacity \\\n    --json\n# comment\n\nmake -n synth\n```\n```text\nls\n```\n"
    )
    assert commands_in(text) == ["synapscribe capacity --json", "make -n synth"]
    assert commands_in("```sh\nmake demo   # the report's tables\nx --tag '#1' a#b\n```\n") == [
        "make demo",
        "x --tag '#1' a#b",
    ]
    assert split_command("AMI=$(aws ssm get-parameter --name /x)") == [
        "aws",
        "ssm",
        "get-parameter",
        "--name",
        "/x",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "synapscribe capacity --no-such-flag",
        "synapscribe nosuch",
        "aws ssm put-parameter --name /synapscribe/ami/latest --bogus 1 --value x",
        "aws ssm put-parameter --value x",
        "aws ssm get-parameter --name /not/ours",
        "aws ssm put-parameter --name /synapscribe/staging/intake --type String --value x",
        """aws ssm put-parameter --name /synapscribe/prod/intake --type String --value '{"uploads":"shut"}'""",
        "aws autoscaling no-such-operation",
        "curl http://example.com",
        "synapscribe platform --max-model-len 100",
        "make no-such-target",
        "source .venv/bin/activate.fish",
        "scripts/bake-ami --region eu-west-1 --no-such-flag",
        "scripts/no-such-script",
        "journalctl -u synapscribe-nosuch",
        "npx cdk deploy --no-such-cdk-flag",
        "aws autoscaling set-desired-capacity --auto-scaling-group-name x --desired-capacity 1 --bogus",
        ".venv/bin/pytest tests/host --hosts nosuch://i-0",
        ".venv/bin/pytest tests/host --no-such-pytest-flag",
    ],
)
def test_checker_rejects_drifted_commands(line: str):
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_command(line)
