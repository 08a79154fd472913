"""Prompts. They live with the activities, never in workflow code: a replay never
re-reads a prompt, and activating a new version only affects later calls.

Admins edit prompts in the Django admin; the texts below are the code-defined
defaults, seeded on migrate (chatapp.signals) when a prompt has no version yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatapp.selectors import prompt_version_active

AGENT_SYSTEM_PROMPT = "agent-system"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    text: str

    @property
    def version_id(self) -> str:
        return f"{self.name}@v{self.version}"


DEFAULTS = {
    AGENT_SYSTEM_PROMPT: Prompt(
        name=AGENT_SYSTEM_PROMPT,
        version=1,
        text=(
            "You are the support agent of a small online shop. Answer concisely in Markdown. "
            "Use the tools you are given to look things up before answering, and never invent "
            "order details. Actions that change records may need a human reviewer's approval: "
            "when a tool result says an action was rejected, tell the user why."
        ),
    ),
}


async def active_prompt(name: str) -> Prompt:
    """The active version from the database, or the code default if none is stored."""
    stored = await prompt_version_active(name=name)
    if stored is None:
        return DEFAULTS[name]
    return Prompt(name=name, version=stored.version, text=stored.text)
