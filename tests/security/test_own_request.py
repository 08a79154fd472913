"""A reviewer (or an admin) who asks the agent for a refund cannot approve, reject, edit,
bulk-decide or claim their own request: the workflow's validators refuse, the page says
why, and the request still waits for someone else, who can decide it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from django.contrib.auth.models import AbstractBaseUser
from temporalio.client import Client as TemporalClient

from reviews.models import Approval
from shop.models import Refund
from tests.approvals import (
    refund_requested,
    reviewer_create,
    row_id,
)
from tests.helpers import (
    body,
    eventually,
    html_element,
    html_text,
    logged_in,
)
from tests.security.support import (
    admin_create,
    htmx,
    still_pending,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_leftover_approvals"),
]

OWN_DECISION = "You cannot decide on your own request."
OWN_CLAIM = "You cannot review your own request."
REQUESTERS: dict[str, Callable[[], Awaitable[AbstractBaseUser]]] = {
    "reviewer": lambda: reviewer_create("rita"),
    "admin": lambda: admin_create("boss"),
}


@pytest.mark.parametrize("requester_kind", REQUESTERS)
async def test_a_reviewer_cannot_decide_or_claim_their_own_request(
    requester_kind: str, temporal: TemporalClient, worker: object
) -> None:
    requester = await REQUESTERS[requester_kind]()
    approval = await refund_requested(temporal, requester)
    client = await logged_in(requester)
    base = f"/reviews/{approval.conversation_id}/{approval.call_id}/"
    from_row = htmx("/reviews/", target=f"{row_id(approval)}-result")
    decision = {"arguments_hash": approval.arguments_hash}
    edited = approval.arguments.replace('"120.00"', '"1.00"')

    dashboard = body(await client.get("/reviews/"))
    row = html_element(dashboard, row_id(approval))
    assert row is not None and "your request" in html_text(row)

    answers = {
        "approve": await client.post(
            f"{base}decide/", {**decision, "action": "approve"}, headers=from_row
        ),
        "reject": await client.post(
            f"{base}decide/", {**decision, "action": "reject", "reason": "no"}, headers=from_row
        ),
        "edit": await client.post(
            f"{base}decide/",
            {**decision, "action": "approve", "edited_arguments": edited},
            headers=htmx(base, target="decision-result"),
        ),
        "claim": await client.post(
            f"{base}claim/", headers=htmx("/reviews/", target=f"{row_id(approval)}-claim")
        ),
    }
    page_decide = await client.post(f"{base}decide/", {**decision, "action": "approve"})
    page_claim = await client.post(f"{base}claim/")
    bulk = await client.post(
        "/reviews/bulk/",
        {
            "item": f"{approval.conversation_id}:{approval.call_id}:{approval.arguments_hash}",
            "action": "approve",
        },
        headers=htmx("/reviews/", target="bulk-result"),
    )

    shown = {name: html_text(body(r)).strip() for name, r in answers.items()}
    assert shown == {
        "approve": OWN_DECISION,
        "reject": OWN_DECISION,
        "edit": OWN_DECISION,
        "claim": OWN_CLAIM,
    }
    assert page_decide.status_code == page_claim.status_code == 422
    decide_box = html_element(body(page_decide), "decision-result") or ""
    assert html_text(decide_box).strip() == OWN_DECISION
    claim_box = html_element(body(page_claim), "decision-result") or ""
    assert html_text(claim_box).strip() == OWN_CLAIM
    bulk_text = html_text(body(bulk))
    assert "0 of 1 approved" in bulk_text
    assert OWN_DECISION in bulk_text
    assert await still_pending(temporal, approval)
    mirror = await Approval.objects.aget(call_id=approval.call_id)
    assert (mirror.status, mirror.claimed_by_id, mirror.decided_by_id) == ("pending", None, None)
    assert not await Refund.objects.filter(conversation_id=approval.conversation_id).aexists()

    # Someone else can: the refusals above were about whose request it is.
    colleague = await logged_in(await reviewer_create("ravi"))
    claimed = await colleague.post(
        f"{base}claim/", headers=htmx("/reviews/", target=f"{row_id(approval)}-claim")
    )
    assert "Claimed by you" in html_text(body(claimed))
    approved = await colleague.post(
        f"{base}decide/", {**decision, "action": "approve"}, headers=from_row
    )
    assert "Approved" in html_text(body(approved))
    await eventually(
        lambda: Refund.objects.filter(conversation_id=approval.conversation_id).aexists()
    )
