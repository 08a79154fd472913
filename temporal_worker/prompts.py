"""Prompt templates, versioned. They live with the activities, never in workflow code,
so a replay never re-reads a prompt and a new version only affects later calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    text: str

    @property
    def version_id(self) -> str:
        return f"{self.name}@v{self.version}"


AGENT_SYSTEM = Prompt(
    name="agent-system",
    version=1,
    text=(
        "You are the support agent of a small online shop. Answer concisely in Markdown. "
        "Use the tools you are given to look things up before answering, and never invent "
        "order details. Actions that change records may need a human reviewer's approval: "
        "when a tool result says an action was rejected, tell the user why."
    ),
)


def active_system_prompt() -> Prompt:
    return AGENT_SYSTEM
