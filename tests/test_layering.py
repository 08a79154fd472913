"""Two import rules that import-linter's contracts (pyproject.toml) cannot say, because
they are allow-lists: whatever is not named is refused, new modules included.

- contracts and context are plain Python (the standard library and each other), the
  workflow module adds only temporalio and trace_context, which adds only the
  OpenTelemetry API (as temporalio's own tracing does there): all load in the sandbox;
- the apps use only the parts of temporal_worker made for them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_PACKAGES = ("chatapp", "reviews", "shop")
# What an app may import from temporal_worker: the client, the shared types, the tool
# registry, the ports it implements, the live-event publisher, and the rules MCP names
# follow (the admin's forms check a server's name with them).
OPEN_TO_APPS = (
    "temporal_worker.client",
    "temporal_worker.contracts",
    "temporal_worker.live",
    "temporal_worker.ports",
    "temporal_worker.tools.mcp.names",
    "temporal_worker.tools.registry",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported name) for every import in the file, relative ones made absolute;
    `from a import b` yields a.b, since b may be a module."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _stdlib(name: str) -> bool:
    return name.partition(".")[0] in sys.stdlib_module_names


def _sources(*relative: str) -> list[Path]:
    found: list[Path] = []
    for entry in relative:
        path = ROOT / entry
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [p for p in found if "migrations" not in p.parts]


@pytest.mark.parametrize(
    ("sources", "allowed"),
    [
        (("temporal_worker/contracts",), ("temporal_worker.contracts",)),
        (("temporal_worker/context.py",), ("temporal_worker.contracts",)),
        (
            ("temporal_worker/workflows.py",),
            (
                "temporal_worker.contracts",
                "temporal_worker.context",
                "temporal_worker.trace_context",
                "temporalio",
            ),
        ),
        (("temporal_worker/trace_context.py",), ("opentelemetry", "temporalio")),
    ],
    ids=["contracts", "context", "workflows", "trace_context"],
)
def test_sandboxed_code_imports_only_the_standard_library_and_its_own_kind(
    sources: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(*sources)
        for line, name in _imports(path)
        if not (_stdlib(name) or _within(name, allowed))
    ]
    assert offending == []


def test_apps_use_only_the_parts_of_temporal_worker_made_for_them() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(*APP_PACKAGES)
        for line, name in _imports(path)
        if _within(name, ("temporal_worker",)) and not _within(name, OPEN_TO_APPS)
    ]
    assert offending == []
