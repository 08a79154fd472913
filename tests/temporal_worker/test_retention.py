"""Retention: an idle conversation's workflow completes carrying its state and the next
message goes on from it (on the time-skipping server), and the retention Schedule,
registered by its management command, deletes conversations older than the setting."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from temporalio.client import Client as TemporalClient
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chatapp import services
from chatapp.models import Conversation, Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import ConversationResult, conversation_workflow_id
from temporal_worker.contracts.errors import UserError
from temporal_worker.contracts.retention import RETENTION_SCHEDULE_ID, RETENTION_WORKFLOW
from temporal_worker.scripted_model import ScriptedModelServer
from temporal_worker.worker import build_worker
from temporal_worker.workflows import ConversationWorkflow
from tests.factories import auser_create
from tests.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)

IDLE_CLOSE = dt.timedelta(hours=1)


@pytest_asyncio.fixture
async def time_skipping(
    scripted_model: ScriptedModelServer, settings: SettingsWrapper, task_queue: str
) -> AsyncIterator[WorkflowEnvironment]:
    path = shutil.which("temporal-test-server") or str(
        Path(sys.executable).parent / "temporal-test-server"
    )
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path)
    # The time-skipping server cannot register custom search attributes.
    settings.AGENT_APPROVAL_SEARCH_ATTRIBUTES = False
    settings.CONVERSATION_IDLE_CLOSE_SECONDS = int(IDLE_CLOSE.total_seconds())
    settings.TEMPORAL_TASK_QUEUE = task_queue
    settings.OPENAI_BASE_URL = scripted_model.base_url
    settings.OPENAI_API_KEY = ""
    settings.AGENT_MODEL = "scripted"
    await scripted_model.clear()
    temporal_client.set_client(env.client)
    try:
        async with build_worker(env.client, task_queue=task_queue):
            yield env
    finally:
        await env.shutdown()


async def replies(conversation_id: uuid.UUID, count: int) -> list[Message]:
    async def enough() -> list[Message] | None:
        found = [
            m
            async for m in Message.objects.filter(
                conversation_id=conversation_id, role=Message.Role.ASSISTANT
            ).order_by("seq")
        ]
        return found if len(found) >= count else None

    return await eventually(enough, timeout=30)


async def test_an_idle_conversation_closes_and_the_next_message_reopens_it_with_its_state(
    time_skipping: WorkflowEnvironment,
) -> None:
    env = time_skipping
    alice = await auser_create()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=alice, conversation_id=conversation_id, message_id=uuid.uuid4(), text="hello"
    )
    await replies(conversation_id, 1)
    handle = env.client.get_workflow_handle_for(
        ConversationWorkflow.run, conversation_workflow_id(str(conversation_id))
    )
    first_run = (await handle.describe()).run_id

    await env.sleep(IDLE_CLOSE + dt.timedelta(minutes=1))
    result: ConversationResult = await handle.result()
    assert result.idle_closed and result.state is not None
    assert [m.content for m in result.state.context if m.role == "user"] == ["hello"]

    sent = await services.message_send(
        user=alice, conversation_id=conversation_id, message_id=uuid.uuid4(), text="again"
    )
    # Numbering goes on from the carried state (a fresh run would number it 1).
    assert sent.accepted.seq == 3
    await replies(conversation_id, 2)
    current = await env.client.get_workflow_handle(handle.id).describe()
    assert current.run_id != first_run
    assert current.status is not None and current.status.name == "RUNNING"


async def test_an_archived_conversation_is_not_reopened_by_a_message(
    time_skipping: WorkflowEnvironment,
) -> None:
    alice = await auser_create()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=alice, conversation_id=conversation_id, message_id=uuid.uuid4(), text="hello"
    )
    await replies(conversation_id, 1)
    await temporal_client.conversation_close(conversation_id=str(conversation_id))
    handle = time_skipping.client.get_workflow_handle_for(
        ConversationWorkflow.run, conversation_workflow_id(str(conversation_id))
    )
    assert not (await handle.result()).idle_closed
    archived_run = (await handle.describe()).run_id
    # (The page refuses it first; the client refuses it too, whatever the server says.)
    with pytest.raises(UserError):
        await temporal_client.message_send(
            conversation_id=str(conversation_id),
            owner_id=alice.pk,
            message_id=str(uuid.uuid4()),
            text="still there?",
        )
    after = await handle.describe()
    assert after.run_id == archived_run and after.status is not None
    assert after.status.name == "COMPLETED"


def register() -> str:
    out = io.StringIO()
    call_command("retention_schedule", stdout=out)
    return out.getvalue()


async def test_the_retention_schedule_deletes_conversations_older_than_the_setting(
    temporal: TemporalClient, worker: Worker, settings: SettingsWrapper
) -> None:
    alice = await auser_create()
    old_id, recent_id = uuid.uuid4(), uuid.uuid4()
    for conversation_id in (old_id, recent_id):
        await services.message_send(
            user=alice, conversation_id=conversation_id, message_id=uuid.uuid4(), text="hi"
        )
        await replies(conversation_id, 1)
    long_ago = timezone.now() - dt.timedelta(days=40)
    await Conversation.objects.filter(id=old_id).aupdate(created_at=long_ago)
    await Message.objects.filter(conversation_id=old_id).aupdate(created_at=long_ago)

    settings.CONVERSATION_RETENTION_DAYS = 30
    assert "Retention schedule created" in await sync_to_async(register)()
    assert "Retention schedule updated" in await sync_to_async(register)()  # idempotent
    schedule = temporal.get_schedule_handle(RETENTION_SCHEDULE_ID)
    description = await schedule.describe()
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == RETENTION_WORKFLOW
    assert description.schedule.spec.intervals[0].every == dt.timedelta(days=1)

    try:
        await schedule.trigger()

        async def old_gone() -> bool:
            return not await Conversation.objects.filter(id=old_id).aexists()

        await eventually(old_gone, timeout=30)
        assert await Conversation.objects.filter(id=recent_id).aexists()

        async def workflow_gone() -> bool:
            try:
                await temporal.get_workflow_handle(conversation_workflow_id(str(old_id))).describe()
            except RPCError:
                return True
            return False

        await eventually(workflow_gone, timeout=30)
    finally:
        settings.CONVERSATION_RETENTION_DAYS = 0
        said = await sync_to_async(register)()
    assert "Retention is off" in said and "removed" in said
    with pytest.raises(RPCError):
        await schedule.describe()
