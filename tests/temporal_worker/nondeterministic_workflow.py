"""A deliberately non-deterministic edit of the conversation workflow, for the replay test.

A module of its own (no Django): the workflow sandbox re-imports the module that
defines a workflow class.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_worker.contracts.conversation import (
        ConversationInput,
        ConversationResult,
        LlmResult,
    )
    from temporal_worker.workflows import ConversationWorkflow


@workflow.defn(name="ConversationWorkflow")
class ChangedConversationWorkflow(ConversationWorkflow):
    """Adds a timer before every LLM step: old histories no longer match."""

    @workflow.run
    async def run(self, inp: ConversationInput) -> ConversationResult:
        return await super().run(inp)

    async def _call_llm(self) -> LlmResult | None:
        await workflow.sleep(timedelta(seconds=1))
        return await super()._call_llm()
