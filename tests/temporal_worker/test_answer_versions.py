"""Regenerate the last answer and edit-and-resend the last message: Workflow Updates with
validators, applied once per id, refused while a turn runs or a reviewer decides; the
earlier version stays in the transcript and leaves the model's context."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import AbstractBaseUser
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient

from chatapp import services
from chatapp.models import Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import (
    LLM_ACTIVITY,
    LlmRequest,
    conversation_workflow_id,
)
from temporal_worker.contracts.errors import Code, Refused
from temporal_worker.scripted_model import ScriptedModelServer
from tests.approvals import refund_requested
from tests.factories import auser_create
from tests.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


async def _rows(cid: uuid.UUID | str) -> list[Message]:
    return [m async for m in Message.objects.filter(conversation_id=cid).order_by("seq")]


async def _idle_with(cid: uuid.UUID, replies: int) -> list[Message]:
    async def done() -> list[Message]:
        rows = await _rows(cid)
        live = await temporal_client.conversation_live_state(conversation_id=str(cid))
        answered = [m for m in rows if m.role == "assistant"]
        return rows if len(answered) >= replies and live and live.status == "idle" else []

    return await eventually(done, timeout=30)


async def _llm_contexts(temporal: TemporalClient, cid: uuid.UUID) -> list[list[str]]:
    """What each model call was shown (role: content), as the history records it."""
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(cid)))
    contexts = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name != LLM_ACTIVITY:
            continue
        (req,) = await temporal.data_converter.decode(attrs.input.payloads, [LlmRequest])
        contexts.append([f"{m.role}: {m.content}" for m in req.context])
    return contexts


async def _conversation(user: AbstractBaseUser, text: str) -> tuple[uuid.UUID, list[Message]]:
    cid = uuid.uuid4()
    await services.message_send(user=user, conversation_id=cid, message_id=uuid.uuid4(), text=text)
    return cid, await _idle_with(cid, 1)


async def test_regenerate_keeps_the_earlier_answer_and_hides_it_from_the_model(
    worker: object, temporal: TemporalClient
) -> None:
    user = await auser_create()
    cid, rows = await _conversation(user, "tell me a fact")
    first = rows[-1]
    request_id = uuid.uuid4()

    await services.answer_regenerate(
        user=user, conversation_id=cid, request_id=request_id, reply_id=first.id
    )
    # The same request again (a doubled click, a retried POST) regenerates once.
    await services.answer_regenerate(
        user=user, conversation_id=cid, request_id=request_id, reply_id=first.id
    )
    rows = await _idle_with(cid, 2)

    assert [(m.role, m.error_kind) for m in rows] == [
        ("user", ""),
        ("assistant", ""),
        ("notice", "regenerated"),
        ("assistant", ""),
    ]
    assert rows[1].id == first.id and rows[3].id != first.id
    contexts = await _llm_contexts(temporal, cid)
    assert len(contexts) == 2
    assert contexts[1] == ["user: tell me a fact"]  # the earlier answer is not shown again


async def test_edit_resends_the_last_message_and_answers_it_anew(
    worker: object, temporal: TemporalClient
) -> None:
    user = await auser_create()
    cid, rows = await _conversation(user, "hello there")
    original = rows[0]
    new_id = uuid.uuid4()

    for _ in range(2):  # applied once per id
        await services.message_edit(
            user=user,
            conversation_id=cid,
            message_id=new_id,
            replaces_id=original.id,
            text="what are your opening hours?",
        )
    rows = await _idle_with(cid, 2)

    assert [(m.role, m.error_kind, m.content[:20]) for m in rows if m.role != "assistant"] == [
        ("user", "", "hello there"),
        ("notice", "edited", ""),
        ("user", "", "what are your openin"),
    ]
    assert rows[3].id == new_id
    assert (await _llm_contexts(temporal, cid))[-1] == ["user: what are your opening hours?"]


async def test_only_the_latest_answer_or_message_can_be_changed(worker: object) -> None:
    user = await auser_create()
    cid, rows = await _conversation(user, "first")
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="second"
    )
    rows = await _idle_with(cid, 2)
    older_reply, older_message = rows[1], rows[0]

    with pytest.raises(Refused) as regenerate:
        await services.answer_regenerate(
            user=user, conversation_id=cid, request_id=uuid.uuid4(), reply_id=older_reply.id
        )
    with pytest.raises(Refused) as edit:
        await services.message_edit(
            user=user,
            conversation_id=cid,
            message_id=uuid.uuid4(),
            replaces_id=older_message.id,
            text="changed",
        )

    assert regenerate.value.code == edit.value.code == Code.NOT_LATEST
    assert "Only the latest answer can be regenerated" in str(regenerate.value)
    assert len(await _rows(cid)) == 4


async def test_both_are_refused_while_a_turn_runs(
    worker: object, scripted_model: ScriptedModelServer
) -> None:
    await scripted_model.add_rules({"match": "versions-slow", "chunk_delay_ms": 150})
    user = await auser_create()
    cid, rows = await _conversation(user, "hello")
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="versions-slow please"
    )

    async def thinking() -> bool:
        live = await temporal_client.conversation_live_state(conversation_id=str(cid))
        return live is not None and live.status == "thinking"

    await eventually(thinking)
    with pytest.raises(Refused) as refused:
        await services.answer_regenerate(
            user=user, conversation_id=cid, request_id=uuid.uuid4(), reply_id=rows[-1].id
        )
    assert refused.value.code == Code.ALREADY_ANSWERING
    assert "wait for the answer or stop it" in str(refused.value)


async def test_both_are_refused_while_a_reviewer_decides(
    worker: object, temporal: TemporalClient, demo_shop: None
) -> None:
    user = await auser_create()
    approval = await refund_requested(temporal, user)
    cid = uuid.UUID(approval.conversation_id)
    # The reply that asked for the refund is recorded before the approval is requested.
    reply = next(m for m in await _rows(cid) if m.role == "assistant" and m.tool_calls)
    user_message = next(m for m in await _rows(cid) if m.role == "user")

    with pytest.raises(Refused) as regenerate:
        await services.answer_regenerate(
            user=user, conversation_id=cid, request_id=uuid.uuid4(), reply_id=reply.id
        )
    with pytest.raises(Refused) as edit:
        await services.message_edit(
            user=user,
            conversation_id=cid,
            message_id=uuid.uuid4(),
            replaces_id=user_message.id,
            text="never mind",
        )

    assert regenerate.value.code == edit.value.code == Code.APPROVAL_PENDING
    assert "A reviewer is still deciding" in str(edit.value)
