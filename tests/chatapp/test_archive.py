"""The archive: archived conversations are listed, and unarchiving lets the user write
again with the agent remembering the conversation (a new run of the same workflow)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

from chatapp import services
from chatapp.models import Conversation, Message
from temporal_worker import client as temporal_client
from temporal_worker.contracts.conversation import ConversationInput, conversation_workflow_id
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


async def _answered(conversation_id: uuid.UUID, count: int) -> list[Message]:
    async def replies() -> list[Message]:
        rows = [
            m
            async for m in Message.objects.filter(
                conversation_id=conversation_id, role="assistant"
            ).order_by("seq")
        ]
        live = await temporal_client.conversation_live_state(conversation_id=str(conversation_id))
        idle = live is None or live.status == "idle"
        return rows if len(rows) >= count and idle else []

    return await eventually(replies, timeout=30)


async def _run_input(temporal: TemporalClient, conversation_id: uuid.UUID) -> ConversationInput:
    """The input the conversation's latest run started with, as its history records it."""
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(conversation_id)))
    first = (await handle.fetch_history()).events[0]
    payloads = first.workflow_execution_started_event_attributes.input.payloads
    (inp,) = await temporal.data_converter.decode(payloads, [ConversationInput])
    assert isinstance(inp, ConversationInput)
    return inp


async def test_unarchive_continues_the_conversation_in_a_new_run(
    worker: object, temporal: TemporalClient
) -> None:
    owner = await auser_create()
    cid = uuid.uuid4()
    first_id = uuid.uuid4()
    await services.message_send(
        user=owner, conversation_id=cid, message_id=first_id, text="parcel question"
    )
    await _answered(cid, 1)
    await services.conversation_archive(user=owner, conversation_id=cid)
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(cid)))
    archived_run = (await handle.describe()).run_id

    async def completed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(completed)
    client = await logged_in(owner)

    listing = html_element(body(await client.get("/archive/")), "archive-list")
    assert listing is not None and "parcel question" in html_text(listing)
    page = body(await client.get(f"/c/{cid}/"))
    assert html_element(page, "composer") is None
    assert "Unarchive to write again" in html_text(page)

    response = await client.post(f"/c/{cid}/unarchive/", headers={"HX-Request": "true"})
    assert response.headers.get("HX-Redirect") == f"/c/{cid}/"
    # A second click (another tab) is no error and starts no second run.
    await client.post(f"/c/{cid}/unarchive/", headers={"HX-Request": "true"})

    page = body(await client.get(f"/c/{cid}/"))
    assert html_element(page, "composer") is not None
    assert html_element(body(await client.get("/archive/")), "archive-list") is None
    await services.message_send(
        user=owner, conversation_id=cid, message_id=uuid.uuid4(), text="and again"
    )
    replies = await _answered(cid, 2)

    description = await handle.describe()
    assert description.run_id != archived_run
    assert description.status == WorkflowExecutionStatus.RUNNING
    carried = (await _run_input(temporal, cid)).state
    assert carried is not None and not carried.closed
    # The agent remembers the conversation; numbering goes on after the archived run.
    assert [m.content for m in carried.context if m.role == "user"] == ["parcel question"]
    assert str(first_id) in carried.seen_message_ids
    seqs = [m.seq async for m in Message.objects.filter(conversation_id=cid).order_by("seq")]
    assert len(seqs) == len(set(seqs)) == 4
    assert replies[-1].seq == max(seqs)


async def test_a_conversation_whose_history_is_gone_reopens_from_the_transcript(
    worker: object, temporal: TemporalClient
) -> None:
    """Archived long ago (or by an earlier version): Temporal's retention has removed the
    completed run, and the database's transcript is where the agent's memory comes from."""
    owner = await auser_create()
    conversation = await Conversation.objects.acreate(
        owner=owner, title="Old", archived_at=timezone.now()
    )
    old_user = await Message.objects.acreate(
        id=uuid.uuid4(), conversation=conversation, seq=1, role="user", content="old question"
    )
    # An answer regenerated before the archive: the earlier one stays out of the context.
    for seq, role, content, kind in [
        (2, "assistant", "first answer", ""),
        (3, "notice", "", "regenerated"),
        (4, "assistant", "old answer", ""),
    ]:
        await Message.objects.acreate(
            id=uuid.uuid4(),
            conversation=conversation,
            seq=seq,
            role=role,
            content=content,
            error_kind=kind,
        )

    await services.conversation_unarchive(user=owner, conversation_id=conversation.id)
    await services.message_send(
        user=owner, conversation_id=conversation.id, message_id=uuid.uuid4(), text="new question"
    )
    replies = await _answered(conversation.id, 3)

    carried = (await _run_input(temporal, conversation.id)).state
    assert carried is not None
    assert [m.content for m in carried.context] == ["old question", "old answer"]
    assert carried.next_seq == 5
    assert str(old_user.id) in carried.seen_message_ids
    assert replies[-1].seq == 6


async def test_another_users_conversation_cannot_be_unarchived(worker: object) -> None:
    owner, intruder = await auser_create(), await auser_create()
    conversation = await Conversation.objects.acreate(
        owner=owner, title="Mine", archived_at=timezone.now()
    )
    client = await logged_in(intruder)

    response = await client.post(f"/c/{conversation.id}/unarchive/")

    assert response.status_code == 404
    await conversation.arefresh_from_db()
    assert conversation.is_archived
