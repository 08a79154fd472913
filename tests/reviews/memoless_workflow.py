"""The conversation workflow as it was before pending approvals rode in its memo.

A module of its own (no Django): the workflow sandbox re-imports the module that
defines a workflow class. The dashboard must still list such workflows (they are
still running after an upgrade), asking each one with a Query.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_worker.contracts.conversation import ConversationInput, ConversationResult
    from temporal_worker.workflows import ConversationWorkflow


@workflow.defn(name="ConversationWorkflow")
class MemolessConversationWorkflow(ConversationWorkflow):
    @workflow.run
    async def run(self, inp: ConversationInput) -> ConversationResult:
        return await super().run(inp)

    def _memo_pending_approvals(self) -> None:
        pass
