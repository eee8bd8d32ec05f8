"""The import arrows between remotebottle's layers, read from the source with `ast`.

Every import counts: at module top, inside functions (the lazy ones) and under
`TYPE_CHECKING`, since each is a dependency a reader has to follow. The rules:

- `backend` knows nothing of hosts, SSH or the CLI: it gets a Docker client.
- `transport` knows nothing of the manifest, hosts, backend or the CLI: it gets an
  `SshEndpoint` (built from the manifest in `hosts/`) and connects to it.
- `hosts` does not import the CLI.
- only `cli` imports `cli`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "remotebottle"


@dataclass(frozen=True)
class Rule:
    """Modules under `layer` import nothing under any of `forbidden`."""

    layer: str
    forbidden: tuple[str, ...]


RULES = [
    Rule(
        "remotebottle.backend",
        ("remotebottle.hosts", "remotebottle.transport", "remotebottle.cli", "remotebottle.ops"),
    ),
    Rule(
        "remotebottle.transport",
        (
            "remotebottle.manifest",
            "remotebottle.cli",
            "remotebottle.backend",
            "remotebottle.hosts",
            "remotebottle.ops",
        ),
    ),
    Rule("remotebottle.hosts", ("remotebottle.cli", "remotebottle.ops")),
    Rule("remotebottle.manifest", ("remotebottle.ops",)),
    Rule("remotebottle", ("remotebottle.cli",)),  # everything but `cli` itself
]

# `python -m remotebottle` is the console script's other door: it only calls `cli.main`.
ENTRY_POINTS = frozenset({"remotebottle.__main__"})

# Known violations, each (importing module, imported module) with the reason it is still
# there. Empty: every arrow above holds. An entry here must name its way out.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    # Files shipped as data (run inside containers, never imported by the package).
    return {name: p for name, p in found.items() if ".resources." not in f".{name}."}


@cache
def imports(module: str) -> frozenset[str]:
    path = modules()[module]
    return imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> frozenset[str]:
    """Every module `source` imports; `from a import b` counts as both `a` and `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.module, node.level)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, name] if name else anchor)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(rule: Rule) -> set[tuple[str, str]]:
    found = set()
    for module in modules():
        if not under(module, rule.layer) or under(module, "remotebottle.cli"):
            continue
        if module in ENTRY_POINTS:
            continue
        for imported in imports(module):
            if any(under(imported, f) for f in rule.forbidden):
                found.add((module, imported))
    return found


def test_the_source_is_found() -> None:
    names = modules()
    for layer in ("backend", "transport", "hosts", "cli", "manifest"):
        assert any(under(n, f"remotebottle.{layer}") for n in names), layer
    assert "remotebottle.transport.ssh" in names
    assert not any(".resources." in n for n in names)


def test_every_kind_of_import_counts() -> None:
    source = """
from __future__ import annotations
import remotebottle.errors
from typing import TYPE_CHECKING
from remotebottle import manifest
from . import cloud
from ..transport import ssh

if TYPE_CHECKING:
    from remotebottle.cli.console import out

def later() -> None:
    from remotebottle.backend.docker import backend
"""
    found = imports_in(source, "remotebottle.hosts.engine")
    for name in (
        "remotebottle.errors",
        "remotebottle.manifest",
        "remotebottle.hosts.cloud",
        "remotebottle.transport.ssh",
        "remotebottle.cli.console",
        "remotebottle.backend.docker.backend",
    ):
        assert name in found, name
    in_package = imports_in("from .cloud import x", "remotebottle.hosts", is_package=True)
    assert "remotebottle.hosts.cloud" in in_package


@pytest.mark.parametrize(
    "rule",
    RULES,
    ids=lambda r: r.layer.removeprefix("remotebottle.") if "." in r.layer else "everything",
)
def test_layer_arrows(rule: Rule) -> None:
    found = violations(rule)
    unexpected = sorted(v for v in found if v not in KNOWN_VIOLATIONS)
    assert not unexpected, "\n".join(f"{m} imports {i}" for m, i in unexpected)


def test_known_violations_are_still_violations() -> None:
    """A fixed violation leaves the allowlist, so the list never hides a new one."""
    found = set().union(*(violations(rule) for rule in RULES))
    stale = sorted(set(KNOWN_VIOLATIONS) - found)
    assert not stale, f"no longer violated, remove from KNOWN_VIOLATIONS: {stale}"
