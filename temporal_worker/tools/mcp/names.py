"""Names that cannot collide: `<server>__<tool>` for MCP tools, `handoff_to_<agent>` for
hand-offs, and built-in tool names that use neither form.

A server name has no double underscore and does not end with one, so the first `__` in an
MCP tool's name is always the separator: two servers can never offer the same name, and
no built-in tool or hand-off contains `__` at all.
"""

from __future__ import annotations

import hashlib
import re

from temporal_worker.contracts.tools import HANDOFF_TOOL_PREFIX, MCP_NAME_SEPARATOR

# Server and agent names (slugs): lower case words joined by single underscores.
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
SLUG_MAX_CHARS = 24
# OpenAI's limit for a function's name (and the approval policy table's column fits it).
TOOL_NAME_MAX_CHARS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug_problem(value: str) -> str:
    """What is wrong with a server or agent name ("" when it is fine)."""
    if not value or len(value) > SLUG_MAX_CHARS or not SLUG_RE.match(value):
        return (
            f"Use 1 to {SLUG_MAX_CHARS} lower-case letters, digits and single underscores, "
            "starting with a letter (for example: warehouse, order_desk)."
        )
    return ""


def builtin_name_problem(name: str) -> str:
    """Why a built-in tool may not have this name ("" when it may)."""
    if MCP_NAME_SEPARATOR in name:
        return f"{name!r} contains {MCP_NAME_SEPARATOR!r}, which names an MCP server's tool"
    if name.startswith(HANDOFF_TOOL_PREFIX):
        return f"{name!r} starts with {HANDOFF_TOOL_PREFIX!r}, which names a hand-off"
    return ""


def mcp_tool_name(server: str, remote: str, taken: set[str]) -> str:
    """The registry name of a server's tool: `<server>__<tool>`, made of the characters a
    model's function name allows, at most 64 characters, unique among `taken` (names the
    same server's earlier tools got). Deterministic, so every process gets the same name."""
    local = _UNSAFE.sub("_", remote).strip("_") or "tool"
    prefix = f"{server}{MCP_NAME_SEPARATOR}"
    room = TOOL_NAME_MAX_CHARS - len(prefix)
    name = prefix + local
    if len(name) > TOOL_NAME_MAX_CHARS or name in taken:
        digest = hashlib.sha256(remote.encode()).hexdigest()[:8]
        name = f"{prefix}{local[: room - 9].rstrip('_')}_{digest}"
    counter = 2
    base = name
    while name in taken:
        suffix = f"_{counter}"
        name = base[: TOOL_NAME_MAX_CHARS - len(suffix)] + suffix
        counter += 1
    return name


def mcp_server_of(tool: str) -> str:
    """The server an MCP tool's registry name belongs to ("" for any other tool)."""
    server, separator, _ = tool.partition(MCP_NAME_SEPARATOR)
    return server if separator else ""
