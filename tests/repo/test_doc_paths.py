"""Every repository path the README and the docs name is a file that exists (or one the tools write
and git ignores, like Packer's manifest): a module moved or renamed leaves no stale pointer. A path
written short (`agentcore/outbox.py`, `stacks/api.py`) is looked up under each package."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_RE = re.compile(
    r"(?<![\w/.-])[a-z_]+(?:/[A-Za-z0-9_.-]+)+\.(?:py|yaml|yml|js|css|md|sh|hcl|json|j2|toml|html)\b"
)
#: Where a short path may be written from: the packages' folders.
PACKAGES = [
    ROOT / "runtime",
    ROOT / "runtime" / "synapscribe",
    ROOT / "runtime" / "synapscribe_ops",
    ROOT / "runtime" / "synapscribe_local",
    ROOT / "cdk",
    ROOT / "cdk" / "synapscribe_cdk",
]


def named_paths(text: str) -> set[str]:
    return set(PATH_RE.findall(text))


def _found(path: str) -> bool:
    return (ROOT / path).exists() or any((base / path).exists() for base in PACKAGES) or _ignored(path)


def _ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False).returncode == 0


def test_the_pattern_finds_paths_and_nothing_else() -> None:
    text = "`runtime/synapscribe/agentcore/outbox.py`, cdk/app.py, agentcore/x.py; not runtime/, a.py, https://a.b/c.js"
    assert named_paths(text) == {"runtime/synapscribe/agentcore/outbox.py", "cdk/app.py", "agentcore/x.py"}
    assert _found("agentcore/outbox.py") and _found("stacks/api.py") and not _found("agentcore/x.py")


def test_every_path_the_docs_name_exists() -> None:
    named = {(doc.name, path) for doc in DOCS for path in named_paths(doc.read_text())}
    assert len(named) > 40, "the docs name far fewer paths than they do: the pattern is broken"
    missing = sorted(f"{doc}: {path}" for doc, path in named if not _found(path))
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)
