"""Real approvals for tests: reviewers, orders, and a customer's refund request that the
workflow's approval gate holds for a reviewer."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Permission
from django.utils import timezone
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError

from chatapp import services
from chatapp.models import Conversation
from reviews import selectors as review_selectors
from reviews.models import Approval
from reviews.selectors import approval_dom_id
from shop.models import Customer, Order
from temporal_worker import client as temporal_client
from temporal_worker.contracts.approvals import (
    SA_APPROVAL_PENDING,
    DecideApproval,
    PendingApproval,
)
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.workflows import ConversationWorkflow
from tests.factories import auser_create
from tests.helpers import eventually

# Above the seeded shop's order numbers.
_order_numbers = itertools.count(93001)


async def reviewer_create(username: str | None = None, **extra: object) -> AbstractBaseUser:
    user = await auser_create(username=username, **extra)
    permission = await Permission.objects.aget(codename="review_approvals")
    await user.user_permissions.aadd(permission)
    return user


async def order_create(total: str = "500.00") -> Order:
    number = next(_order_numbers)
    customer = await Customer.objects.acreate(
        name=f"Customer {number}", email=f"customer{number}@test.example"
    )
    return await Order.objects.acreate(
        number=number,
        customer=customer,
        status=Order.Status.DELIVERED,
        total=Decimal(total),
        items=[{"sku": "T-1", "name": "Test item", "qty": 1, "price": total}],
    )


async def refund_requested(
    temporal: TemporalClient, user: AbstractBaseUser, *, amount: str = "120", extra: str = ""
) -> PendingApproval:
    """`user` asks the agent for a refund; returns the approval once the workflow waits
    on it and the audit mirror (written by the "requested" notification) has its row."""
    order = await order_create()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text=f"Please refund {amount} on order {order.number}{extra}",
    )
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(conversation_id)))

    async def pending() -> PendingApproval | None:
        result = await handle.query(ConversationWorkflow.pending_approvals)
        return result.items[0] if result.items else None

    approval = await eventually(pending)
    await eventually(
        lambda: Approval.objects.filter(workflow_id=handle.id, call_id=approval.call_id).aexists()
    )
    return approval


def decision_for(
    item: PendingApproval, reviewer: AbstractBaseUser, action: str = "approve", **extra: Any
) -> DecideApproval:
    """A reviewer's decision on `item`; `extra` overrides any field (a wrong hash, say)."""
    return DecideApproval(
        call_id=extra.pop("call_id", item.call_id),
        action=action,  # type: ignore[arg-type]
        reviewer_id=reviewer.pk,
        reviewer=reviewer.get_username(),
        arguments_hash=extra.pop("arguments_hash", item.arguments_hash),
        **extra,
    )


async def approval_mirror_create(conversation: Conversation, *, call_id: str) -> Approval:
    """A pending row in the audit mirror only (no workflow): for tests of access rules."""
    now = timezone.now()
    return await Approval.objects.acreate(
        workflow_id=conversation.workflow_id,
        call_id=call_id,
        conversation=conversation,
        requester_id=conversation.owner_id,
        tool="issue_refund",
        summary="Refund 1.00 EUR on order #1",
        arguments={"order_id": 1, "amount": "1.00", "reason": "r"},
        requested_at=now,
        deadline=now + dt.timedelta(days=1),
        timeout_action="reject",
    )


async def pending_approvals_terminate(temporal: TemporalClient) -> None:
    """Workflows left waiting by earlier tests have no worker any more, and the dashboard's
    listing would wait on their queries: end them."""
    query = f'{SA_APPROVAL_PENDING} = true AND ExecutionStatus = "Running"'
    async for execution in temporal.list_workflows(query):
        with contextlib.suppress(RPCError):  # already gone is fine
            await temporal.get_workflow_handle(execution.id).terminate("test cleanup")


def row_id(approval: PendingApproval) -> str:
    """The dashboard row's element id."""
    return approval_dom_id(conversation_id=approval.conversation_id, call_id=approval.call_id)


async def listed_pending() -> list[PendingApproval]:
    """Every pending approval as the inbox lists it (visibility, then the audit)."""
    listing = await temporal_client.approvals_pending_list()
    return await review_selectors.pending_approvals(listing=listing)
