"""The agent's prompts: code-defined defaults, and the active version admins choose.

Prompts are read inside activities, never in workflow code: a replay never re-reads a
prompt, and activating a new version only affects later calls. The defaults below are
seeded on migrate (chatapp.signals) when a prompt has no version yet.
"""

from __future__ import annotations

from temporal_worker.ports import Prompt

AGENT_SYSTEM_PROMPT = "agent-system"

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


def prompt_active(name: str) -> Prompt:
    """The prompt's active version, else its code default, else an empty prompt (a prompt
    made in the admin with no version activated yet). At most one version is active (a
    constraint), so no ORDER BY: first() would add one, a fifth of the read."""
    from chatapp.models import PromptVersion

    for version in PromptVersion.objects.filter(prompt__name=name, is_active=True).order_by()[:1]:
        return Prompt(name=name, version=version.version, text=version.text)
    return DEFAULTS.get(name) or Prompt(name=name, version=0, text="")
