"""Step-up for large approvals, against a real Temporal server and worker: a policy asks for
a fresh second factor (or the password, for an account without one) before approving, on
the dashboard, through an email link, and never through Slack; the audit records it."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from django.test import AsyncClient
from pytest_django.fixtures import Settings as SettingsWrapper
from temporalio.client import Client as TemporalClient

from reviews.models import Approval, ApprovalPolicy, ReviewerProfile
from temporal_worker import client as temporal_client
from temporal_worker.contracts.approvals import PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from tests.approvals import pending_approvals_terminate, refund_requested, reviewer_create
from tests.config.test_second_factor import app_code, app_enrol
from tests.factories import PASSWORD, auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in
from tests.reviews.channels_support import (
    Mailbox,
    SlackStandIn,
    block_action,
    button,
    interaction_body,
    slack_headers,
)
from tests.reviews.conftest import SLACK_SIGNING_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

STEP_UP = "/accounts/step-up/"


@pytest_asyncio.fixture(autouse=True)
async def no_leftover_approvals(temporal: TemporalClient) -> None:
    await pending_approvals_terminate(temporal)


@pytest_asyncio.fixture
async def large_refunds() -> ApprovalPolicy:
    """Refunds always ask a reviewer; above 100 approving needs a step-up."""
    return await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund", step_up_above=Decimal("100")
    )


def decide_url(approval: PendingApproval) -> str:
    return f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/"


async def approve(client: AsyncClient, approval: PendingApproval) -> str:
    response = await client.post(
        decide_url(approval),
        {"action": "approve", "arguments_hash": approval.arguments_hash},
        headers={"HX-Request": "true"},
    )
    return " ".join(html_text(body(response)).split())


async def mirror(approval: PendingApproval) -> Approval:
    return await Approval.objects.aget(
        workflow_id=conversation_workflow_id(approval.conversation_id), call_id=approval.call_id
    )


async def decided(approval: PendingApproval) -> Approval:
    async def done() -> Approval | None:
        row = await mirror(approval)
        return row if row.status != Approval.Status.PENDING else None

    return await eventually(done)


async def still_pending(approval: PendingApproval) -> bool:
    found = await temporal_client.approval_get(
        conversation_id=approval.conversation_id, call_id=approval.call_id
    )
    return found is not None


async def test_a_large_approval_needs_the_password_of_an_account_without_a_second_factor(
    temporal: TemporalClient, worker: object, large_refunds: ApprovalPolicy
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    approval = await refund_requested(temporal, customer, amount="120")
    client = await logged_in(rita)

    said = await approve(client, approval)
    assert "Approving this needs you to confirm it is you" in said
    assert "Confirm it is you" in said
    assert await still_pending(approval)

    page = await client.get(STEP_UP, {"next": decide_url(approval)})
    assert "Your password" in html_text(body(page))
    wrong = await client.post(STEP_UP, {"method": "password", "password": "nope"})
    assert wrong.status_code == 422
    assert "not right" in html_text(html_element(body(wrong), "step-up-error") or "")
    detail = f"/reviews/{approval.conversation_id}/{approval.call_id}/"
    right = await client.post(STEP_UP, {"method": "password", "password": PASSWORD, "next": detail})
    assert right.status_code == 302 and right.headers["Location"] == detail

    said = await approve(client, approval)
    assert "Approved by" in said, said
    row = await decided(approval)
    assert (row.status, row.decided_by_id, row.step_up) == ("approved", rita.pk, "password")


async def test_a_small_approval_and_a_rejection_need_no_step_up(
    temporal: TemporalClient, worker: object, large_refunds: ApprovalPolicy
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    small = await refund_requested(temporal, customer, amount="40")
    client = await logged_in(rita)
    assert "Approved by" in await approve(client, small)
    assert (await decided(small)).step_up == ""

    large = await refund_requested(temporal, customer, amount="400")
    response = await client.post(
        decide_url(large),
        {"action": "reject", "reason": "too much", "arguments_hash": large.arguments_hash},
        headers={"HX-Request": "true"},
    )
    assert "Rejected by" in html_text(body(response))


async def test_an_edit_that_raises_the_amount_needs_the_step_up(
    temporal: TemporalClient, worker: object, large_refunds: ApprovalPolicy
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    small = await refund_requested(temporal, customer, amount="40")
    arguments = json.loads(small.arguments)
    client = await logged_in(rita)
    response = await client.post(
        decide_url(small),
        {
            "action": "approve",
            "arguments_hash": small.arguments_hash,
            "edited_arguments": json.dumps({**arguments, "amount": 400}),
        },
        headers={"HX-Request": "true"},
    )
    assert "needs you to confirm it is you" in html_text(body(response))
    assert await still_pending(small)


async def test_an_old_step_up_no_longer_counts(
    temporal: TemporalClient,
    worker: object,
    large_refunds: ApprovalPolicy,
    settings: SettingsWrapper,
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    approval = await refund_requested(temporal, customer, amount="120")
    client = await logged_in(rita)
    await client.post(STEP_UP, {"method": "password", "password": PASSWORD})
    settings.STEP_UP_MAX_AGE_SECONDS = 0

    assert "needs you to confirm it is you" in await approve(client, approval)
    assert await still_pending(approval)


async def test_a_reviewer_with_an_app_steps_up_with_a_code_not_the_password(
    temporal: TemporalClient, worker: object, large_refunds: ApprovalPolicy
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    approval = await refund_requested(temporal, customer, amount="120")
    client = await logged_in(rita)
    secret = await app_enrol(client)

    refused = await client.post(STEP_UP, {"method": "password", "password": PASSWORD})
    assert refused.status_code == 422  # an account with a second factor must use it
    assert "needs you to confirm" in await approve(client, approval)

    done = await client.post(STEP_UP, {"method": "app", "code": app_code(secret, steps_ahead=1)})
    assert done.status_code == 302, html_text(body(done))
    assert "Approved by" in await approve(client, approval)
    assert (await decided(approval)).step_up == "totp"


async def test_a_reviewer_without_a_second_factor_is_refused_when_one_is_required(
    temporal: TemporalClient,
    worker: object,
    large_refunds: ApprovalPolicy,
    settings: SettingsWrapper,
) -> None:
    customer = await auser_create()
    rita = await reviewer_create()
    approval = await refund_requested(temporal, customer, amount="120")
    client = await logged_in(rita)
    # A password step-up taken while a second factor was not required yet...
    await client.post(STEP_UP, {"method": "password", "password": PASSWORD})
    settings.REQUIRE_SECOND_FACTOR = True

    # ...counts for nothing now: the decision is refused, and the page offers no password.
    response = await client.post(
        decide_url(approval),
        {"action": "approve", "arguments_hash": approval.arguments_hash},
        headers={"HX-Request": "true"},
    )
    assert "needs a second factor" in html_text(body(response))
    page = await client.get(STEP_UP)
    assert "set one up" in html_text(html_element(body(page), "step-up-no-device") or "")
    refused = await client.post(STEP_UP, {"method": "password", "password": PASSWORD})
    assert refused.status_code == 422
    assert await still_pending(approval)


async def test_an_email_link_asks_for_the_step_up_first(
    temporal: TemporalClient,
    worker: object,
    large_refunds: ApprovalPolicy,
    mailbox: Mailbox,
) -> None:
    customer = await auser_create()
    rita = await reviewer_create("rita")
    approval = await refund_requested(temporal, customer, amount="120")
    [mail] = await mailbox.wait_for("rita@example.com")
    link = urlsplit(mail.link("Approve")).path
    client = await logged_in(rita)

    page = await client.get(link)
    prompt = html_element(body(page), "step-up-prompt")
    assert prompt is not None, html_text(body(page))
    assert "email-decision-form" not in body(page)  # no Approve button before the step-up
    posted = await client.post(link, {})
    assert html_element(body(posted), "step-up-prompt") is not None
    assert await still_pending(approval)

    back = await client.post(STEP_UP, {"method": "password", "password": PASSWORD, "next": link})
    assert back.headers["Location"] == link
    again = await client.get(link)
    assert html_element(body(again), "step-up-prompt") is None
    assert 'class="email-decision-form approve-form"' in body(again)  # the form, at last
    done = await client.post(link, {})
    assert "Approved by rita via email" in " ".join(html_text(body(done)).split())
    row = await decided(approval)
    assert (row.decision_channel, row.step_up) == ("email", "password")


async def test_slack_cannot_step_up_so_it_is_refused_with_a_link_to_the_web(
    temporal: TemporalClient, worker: object, slack: SlackStandIn
) -> None:
    await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund", slack_channel="#approvals", step_up_always=True
    )
    customer = await auser_create()
    rita = await reviewer_create("rita")
    await ReviewerProfile.objects.acreate(user=rita, slack_user_id="U0RITA")
    approval = await refund_requested(temporal, customer, amount="5")

    async def posted() -> object:
        for call in slack.of("chat.postMessage"):
            if approval.call_id in json.dumps(call.body):
                return call
        return None

    call = await eventually(posted)
    data = interaction_body(
        block_action(slack_user="U0RITA", action=button(call, "approve"))  # type: ignore[arg-type]
    )
    response = await AsyncClient().post(
        "/reviews/slack/interactivity/",
        data=data,
        content_type="application/x-www-form-urlencoded",
        headers=slack_headers(data, SLACK_SIGNING_SECRET),
    )
    assert response.status_code == 200
    [told] = [c.body["text"] for c in slack.of("chat.postEphemeral")]
    assert "which Slack cannot ask for: approve it on the web" in told
    assert f"/reviews/{approval.conversation_id}/{approval.call_id}/" in told
    assert await still_pending(approval)
