"""An agent as a step runs it: the admin's row read into a `temporal_worker.ports.AgentProfile`.

Read inside the LLM activity on every step (chatapp.transcript), never in workflow code:
a change in the admin applies from the next model call, and replays never read it. Each
process keeps what it read while the configuration version stays the same.
"""

from __future__ import annotations

from django.conf import settings

from chatapp import configuration
from chatapp.models import Agent, Conversation
from chatapp.prompts import AGENT_SYSTEM_PROMPT, prompt_active
from temporal_worker.ports import AgentProfile, HandoffTarget, LlmChoice, PolicyOverride

# The one agent there was before agents could be defined: today's prompt, every built-in
# tool, the default endpoint. It answers when no agent is defined at all.
FALLBACK_NAME = "Support agent"


def agent_profile(*, conversation_id: str, agent: str) -> AgentProfile:
    """The agent a step runs as: `agent` if it exists, else the one the conversation was
    started with, else the preselected one, else the built-in fallback.

    Agents are read once per configuration version (chatapp.configuration)."""
    reads = configuration.snapshot()
    profile = _profile(reads, agent) if agent else None
    if profile is None:
        slug = _conversation_agent_slug(conversation_id)
        profile = _profile(reads, slug) if slug else None
    if profile is None:
        profile = _profile(reads, None)
    if profile is None:
        profile = reads.get(
            "fallback agent",
            lambda: AgentProfile(
                slug="", name=FALLBACK_NAME, prompt=prompt_active(AGENT_SYSTEM_PROMPT)
            ),
        )
    return profile


def _profile(reads: configuration.Reads, slug: str | None) -> AgentProfile | None:
    # The secrets are part of the key: they come from the environment, not the tables.
    secrets = tuple(sorted(settings.AGENT_SECRETS.items()))
    return reads.get(("agent", slug, secrets), lambda: _profile_read(slug))


def _profile_read(slug: str | None) -> AgentProfile | None:
    row = _agent(slug)
    if row is None:
        return None
    return AgentProfile(
        slug=row.slug,
        name=row.name,
        prompt=prompt_active(row.prompt.name),
        tools=frozenset(str(name) for name in row.tools or []),
        mcp_servers=frozenset(s.name for s in row.mcp_servers.all() if s.enabled),
        policy_overrides={
            p.tool_name: PolicyOverride(
                mode="never" if p.mode == "never" else "above" if p.mode == "above" else "always",
                deadline_seconds=p.deadline_seconds,
                timeout_action=p.timeout_action,
                remind_at_share=p.remind_at_share,
                threshold=p.threshold,
            )
            for p in row.tool_policies.all()
        },
        handoffs=tuple(
            HandoffTarget(slug=a.slug, name=a.name, description=a.description)
            for a in row.handoffs.all()
            if a.pk != row.pk
        ),
        llm=_llm_choice(row),
        max_steps_per_turn=row.max_steps_per_turn or 0,
    )


def _agent(slug: str | None) -> Agent | None:
    """The agent `slug`, or the preselected agent for None."""
    rows = Agent.objects.select_related("prompt", "provider").prefetch_related(
        "mcp_servers", "tool_policies", "handoffs"
    )
    found = rows.filter(slug=slug) if slug is not None else rows.filter(is_default=True)
    return found.first()


def _conversation_agent_slug(conversation_id: str) -> str | None:
    return (
        Conversation.objects.filter(id=conversation_id)
        .values_list("agent__slug", flat=True)
        .first()
    )


def _llm_choice(row: Agent) -> LlmChoice:
    provider = row.provider
    if provider is None:
        return LlmChoice(model=row.model)
    key = settings.AGENT_SECRETS.get(provider.api_key_secret) if provider.api_key_secret else ""
    problem = ""
    if key is None:
        problem = (
            f"The model provider {provider.name} needs the secret {provider.api_key_secret}, "
            f"which is not set (AGENT_SECRET_{provider.api_key_secret} in the worker's "
            "environment)."
        )
    return LlmChoice(
        base_url=provider.base_url,
        api_key=key or "",
        model=row.model or provider.default_model,
        problem=problem,
    )
