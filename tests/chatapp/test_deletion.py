"""Deleting a conversation and an account: the workflow is ended and its history gone from
Temporal (as the real CLI lists it), pending approvals withdrawn first, rows removed and
the audit anonymised; every step safe to repeat. And an admin's export of one person."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from temporalio.client import Client as TemporalClient
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chatapp.models import Conversation, Message
from reviews.models import Approval
from temporal_worker.contracts.conversation import conversation_workflow_id
from tests.approvals import refund_requested, reviewer_create
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in

pytestmark = pytest.mark.django_db(transaction=True)

TEMPORAL_CLI = str(Path(sys.executable).parent / "temporal")


def delete_url(conversation_id: str) -> str:
    return f"/c/{conversation_id}/delete/"


async def cli_listed(env: WorkflowEnvironment, workflow_id: str) -> list[dict[str, object]]:
    """What `temporal workflow list` shows for this id (every run, open or closed)."""
    address = env.client.service_client.config.target_host

    def run() -> str:
        return subprocess.run(
            [
                TEMPORAL_CLI,
                "workflow",
                "list",
                "--address",
                address,
                "--namespace",
                env.client.namespace,
                "--query",
                f'WorkflowId = "{workflow_id}"',
                "--output",
                "json",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    out = (await asyncio.to_thread(run)).strip()
    listed = json.loads(out) if out else []
    return listed if isinstance(listed, list) else [listed]


async def test_deleting_a_conversation_withdraws_ends_and_forgets_it(
    temporal: TemporalClient, worker: Worker, temporal_env: WorkflowEnvironment
) -> None:
    alice = await auser_create()
    rita = await reviewer_create()
    pending = await refund_requested(temporal, alice, amount="120")
    conversation_id = pending.conversation_id
    workflow_id = conversation_workflow_id(conversation_id)
    assert await cli_listed(temporal_env, workflow_id), "the CLI lists the running workflow"
    client = await logged_in(alice)
    page = body(await client.get(f"/c/{conversation_id}/"))
    confirm = html_element(page, "delete-conversation")
    assert confirm is not None and delete_url(conversation_id) in confirm
    assert "This cannot be undone" in html_text(confirm)

    # Without the confirmation's field nothing happens.
    refused = await client.post(delete_url(conversation_id), {}, headers={"HX-Request": "true"})
    assert "Confirm the deletion first" in body(refused)
    assert await Conversation.objects.filter(id=conversation_id).aexists()

    # Someone else cannot delete it (nor learn it exists).
    other = await logged_in(rita)
    response = await other.post(delete_url(conversation_id), {"confirm": "delete"})
    assert response.status_code == 404
    assert await Conversation.objects.filter(id=conversation_id).aexists()

    response = await client.post(
        delete_url(conversation_id), {"confirm": "delete"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200, body(response)
    assert response.headers["HX-Redirect"] == "/"

    assert not await Conversation.objects.filter(id=conversation_id).aexists()
    assert not await Message.objects.filter(conversation_id=conversation_id).aexists()
    audit = await Approval.objects.aget(workflow_id=workflow_id, call_id=pending.call_id)
    # Withdrawn by the workflow before it ended (the reviewers' inboxes heard it from there).
    assert audit.status == Approval.Status.WITHDRAWN
    assert audit.decision_channel == "chat"
    assert audit.conversation_id is None and audit.redacted_at is not None
    assert audit.arguments == {} and "120" not in audit.summary and audit.reason == ""
    assert audit.requester_id == alice.pk and audit.tool == "issue_refund"

    async def gone() -> bool:
        return not await cli_listed(temporal_env, workflow_id)

    await eventually(gone, timeout=30, interval=0.5)

    # Again (a retried request, a second tab): done already, the same answer.
    again = await client.post(
        delete_url(conversation_id), {"confirm": "delete"}, headers={"HX-Request": "true"}
    )
    assert again.headers["HX-Redirect"] == "/"


async def test_a_decision_survives_deletion_without_its_text(
    temporal: TemporalClient, worker: Worker
) -> None:
    alice = await auser_create()
    rita = await reviewer_create()
    pending = await refund_requested(temporal, alice, amount="75", extra=" (my secret reason)")
    reviewer_page = await logged_in(rita)
    decided = await reviewer_page.post(
        f"/reviews/{pending.conversation_id}/{pending.call_id}/decide/",
        {"action": "reject", "reason": "not eligible", "arguments_hash": pending.arguments_hash},
    )
    assert decided.status_code in (200, 302), body(decided)
    workflow_id = conversation_workflow_id(pending.conversation_id)
    await eventually(
        lambda: Approval.objects.filter(
            workflow_id=workflow_id, status=Approval.Status.REJECTED
        ).aexists()
    )
    client = await logged_in(alice)
    await client.post(delete_url(pending.conversation_id), {"confirm": "delete"})

    audit = await Approval.objects.aget(workflow_id=workflow_id)
    assert audit.status == Approval.Status.REJECTED
    assert audit.decided_by_id == rita.pk
    assert audit.decision_reason == "" and audit.arguments == {}
    assert "secret" not in audit.summary + audit.reason


async def test_deleting_an_account_deletes_its_conversations_in_temporal(
    temporal: TemporalClient, worker: Worker, temporal_env: WorkflowEnvironment
) -> None:
    bob = await auser_create()
    await reviewer_create()
    pending = await refund_requested(temporal, bob, amount="30")
    workflow_id = conversation_workflow_id(pending.conversation_id)

    await sync_to_async(bob.delete)()

    assert not await get_user_model().objects.filter(pk=bob.pk).aexists()
    assert not await Conversation.objects.filter(id=pending.conversation_id).aexists()
    audit = await Approval.objects.aget(workflow_id=workflow_id)
    assert audit.status == Approval.Status.WITHDRAWN and audit.requester_id is None

    async def gone() -> bool:
        return not await cli_listed(temporal_env, workflow_id)

    await eventually(gone, timeout=30, interval=0.5)


async def test_admin_exports_one_persons_data_as_json(
    temporal: TemporalClient, worker: Worker
) -> None:
    carol = await auser_create()
    admin = await auser_create(is_staff=True, is_superuser=True)
    pending = await refund_requested(temporal, carol, amount="42")
    await eventually(
        lambda: Message.objects.filter(
            conversation_id=pending.conversation_id, role=Message.Role.USER
        ).aexists()
    )
    client = await logged_in(admin)
    response = await client.post(
        "/admin/auth/user/",
        {"action": "export_user_data", "_selected_action": [str(carol.pk)]},
    )
    assert response.status_code == 200, body(response)
    assert response["Content-Type"] == "application/json"
    assert f"user-{carol.pk}-data.json" in response["Content-Disposition"]
    data = json.loads(body(response))
    assert data["account"]["username"] == carol.get_username()
    [conversation] = data["conversations"]
    assert conversation["id"] == pending.conversation_id
    assert any("refund 42" in m["content"].lower() for m in conversation["messages"])
    assert [a["tool"] for a in data["approvals"]] == ["issue_refund"]

    # Two people at once: refused, the admin is told why.
    both = await client.post(
        "/admin/auth/user/",
        {"action": "export_user_data", "_selected_action": [str(carol.pk), str(admin.pk)]},
        follow=True,
    )
    assert "Select exactly one person" in body(both)
