"""One convention each (issue 20), checked on the source so a new module cannot drift from it:

- a FastAPI app's routes live on module-level `APIRouter`s and read what they work with from
  `request.app.state` (AgentCore, TTS, the stand-in); no route is a closure inside `create_app`;
- one `cli.py` per package: a command is a subpackage's `cli.py` or a `Command` in its package's
  `cli.py`, never a `*_cli.py` module beside it; every subcommand the `synapscribe` command lists
  is found where its table says (`module` or `module:NAME`) and reads arguments and runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from synapscribe.cli import commands, load_command

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "websocket"}


def runtime_modules() -> list[Path]:
    return sorted(p for p in RUNTIME.rglob("*.py") if ".egg-info" not in str(p))


def nested_routes(source: str) -> list[tuple[int, str]]:
    """(line, name) of each function decorated as a route (`@x.get(...)`, `@x.post(...)`, …) that is
    defined inside another function: a route closure over the app it is added to."""
    found: list[tuple[int, str]] = []
    for outer in ast.walk(ast.parse(source)):
        if not isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(outer):
            if node is outer or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr in ROUTE_METHODS:
                    found.append((node.lineno, node.name))
    return found


def test_the_scan_finds_a_route_closure() -> None:
    source = (
        "def create_app(config):\n"
        "    app = FastAPI()\n\n"
        "    @app.get('/health')\n"
        "    async def health():\n"
        "        return {}\n"
        "    return app\n"
    )
    assert nested_routes(source) == [(5, "health")]
    assert (
        nested_routes("router = APIRouter()\n\n@router.get('/health')\nasync def health():\n    return {}\n")
        == []
    )


def test_every_route_is_on_a_module_level_router() -> None:
    closures = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in runtime_modules()
        for line, name in nested_routes(path.read_text(encoding="utf-8"))
    ]
    assert not closures, (
        "routes defined inside a function (put them on a module-level APIRouter):\n" + "\n".join(closures)
    )


@pytest.mark.parametrize(
    "app_module",
    ["synapscribe/agentcore/app.py", "synapscribe/tts/app.py", "synapscribe_local/standin/server.py"],
)
def test_each_app_includes_module_level_routers(app_module: str) -> None:
    tree = ast.parse((RUNTIME / app_module).read_text(encoding="utf-8"))
    routers = [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "APIRouter"
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    assert routers, f"{app_module} has no module-level APIRouter"


def test_no_cli_module_sits_beside_a_package_cli() -> None:
    beside = [str(p.relative_to(ROOT)) for p in runtime_modules() if p.name.endswith("_cli.py")]
    assert not beside, f"fold these into their package's cli.py (or a subpackage's): {beside}"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_subcommand_is_found_where_its_table_says(name: str) -> None:
    target, help_text = commands()[name]
    command = load_command(target)
    assert callable(command.add_arguments) and callable(command.run), target
    assert help_text
