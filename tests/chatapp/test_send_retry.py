"""A send that times out is tried again with the same update id: applied exactly once.

Real dev server, no worker at first: the Update cannot complete, each attempt reaches
its deadline, and the worker that starts later finds one message, not several.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client

from chatapp import services
from chatapp.models import Conversation, Message
from temporal_worker.client import retrying
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.contracts.errors import Unavailable
from temporal_worker.worker import build_worker
from tests.factories import auser_create
from tests.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrying, "UPDATE_ATTEMPT_TIMEOUT", timedelta(seconds=1))


async def _accepted_updates(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for event in history.events
        if event.HasField("workflow_execution_update_accepted_event_attributes")
    ]


async def test_a_timed_out_send_is_retried_and_applied_once(
    temporal: Client, task_queue: str, short_attempts: None
) -> None:
    user = await auser_create(username="patient")
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()

    async def worker_later() -> None:
        await asyncio.sleep(2.5)  # two or three attempts time out first
        async with build_worker(temporal, task_queue=task_queue):
            await eventually(
                lambda: Message.objects.filter(
                    conversation_id=conversation_id, role="assistant"
                ).aexists(),
                timeout=30,
            )

    worker = asyncio.create_task(worker_later())
    sent = await services.message_send(
        user=user, conversation_id=conversation_id, message_id=message_id, text="hello there"
    )
    await worker

    assert sent.message.id == message_id
    workflow_id = conversation_workflow_id(str(conversation_id))
    assert await _accepted_updates(temporal, workflow_id) == [str(message_id)]
    messages = Message.objects.filter(conversation_id=conversation_id)
    assert [m.role async for m in messages.order_by("seq")] == ["user", "assistant"]


async def test_past_the_budget_the_user_is_told_and_the_conversation_is_kept(
    temporal: Client, task_queue: str, short_attempts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrying, "UPDATE_RETRY_BUDGET_SECONDS", 2.0)
    user = await auser_create(username="hasty")
    conversation_id, message_id = uuid.uuid4(), uuid.uuid4()

    with pytest.raises(Unavailable) as raised:
        await services.message_send(
            user=user, conversation_id=conversation_id, message_id=message_id, text="hi"
        )

    assert raised.value.outcome_unknown
    assert str(raised.value).endswith("Send again: it will not be done twice.")
    # The workflow may still take the message: its replies need the conversation row.
    assert await Conversation.objects.filter(id=conversation_id).aexists()
    async with build_worker(temporal, task_queue=task_queue):
        resent = await services.message_send(
            user=user, conversation_id=conversation_id, message_id=message_id, text="hi"
        )
        assert resent.message.id == message_id
        workflow_id = conversation_workflow_id(str(conversation_id))
        assert await _accepted_updates(temporal, workflow_id) == [str(message_id)]
