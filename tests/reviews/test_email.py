"""Approvals by email, with real parts: a real Temporal server and worker, the scripted
model, and a real SMTP server (aiosmtpd) that receives what Django's SMTP backend sends.

A customer asks for a refund; the workflow's gate waits; the notify activity emails each
reviewer the request is routed to, with signed, single-use links; a link's page asks to
confirm, and the POST decides through the dashboard's Update and validator.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
import zoneinfo
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core import checks, signing
from django.test import AsyncClient
from django.utils import dateformat, timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from chatapp.models import Conversation
from config.processes import free_port
from reviews.email_links import link_token
from reviews.models import Approval, ApprovalDelivery, ApprovalLink, ApprovalPolicy, ReviewerProfile
from shop.models import Refund
from temporal_worker import client as temporal_client
from temporal_worker.activities.approvals import ApprovalActivity
from temporal_worker.contracts.approvals import ApprovalEvent, PendingApproval, arguments_hash
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.worker import product_ports
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import pending_approvals_terminate, refund_requested, reviewer_create
from tests.factories import PASSWORD, auser_create
from tests.helpers import body, eventually, history, html_element, html_text, logged_in, of_type
from tests.reviews.channels_support import Mailbox, ReceivedMail
from tests.security.support import executable_markup

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
XSS = "<img src=x onerror=alert(1)>"


@pytest_asyncio.fixture(autouse=True)
async def no_leftover_approvals(temporal: TemporalClient) -> None:
    await pending_approvals_terminate(temporal)


@pytest_asyncio.fixture
async def customer() -> AbstractBaseUser:
    return await auser_create(username="carla")


@pytest_asyncio.fixture
async def rita() -> AbstractBaseUser:
    return await reviewer_create("rita")


@pytest_asyncio.fixture
async def ravi() -> AbstractBaseUser:
    return await reviewer_create("ravi")


def path_of(link: str) -> str:
    return urlsplit(link).path


def page_text(response: object) -> str:
    return " ".join(html_text(body(response)).split())  # type: ignore[arg-type]


def result_text(response: object) -> str:
    found = html_element(body(response), "decision-result")  # type: ignore[arg-type]
    assert found is not None, body(response)  # type: ignore[arg-type]
    return " ".join(html_text(found).split())


async def mirror_of(approval: PendingApproval) -> Approval:
    return await Approval.objects.select_related("decided_by").aget(
        workflow_id=conversation_workflow_id(approval.conversation_id), call_id=approval.call_id
    )


async def decided(approval: PendingApproval) -> Approval:
    async def done() -> Approval | None:
        row = await mirror_of(approval)
        return row if row.status != Approval.Status.PENDING else None

    return await eventually(done)


async def refunds_of(approval: PendingApproval) -> int:
    workflow_id = conversation_workflow_id(approval.conversation_id)
    return await Refund.objects.filter(idempotency_key__startswith=workflow_id).acount()


async def still_pending(approval: PendingApproval) -> bool:
    found = await temporal_client.approval_get(
        conversation_id=approval.conversation_id, call_id=approval.call_id
    )
    return found is not None


async def all_sent(approval: PendingApproval, count: int) -> None:
    """Wait until `count` deliveries of the approval are recorded as sent (the rows are
    marked right after the mail server answers)."""
    mirror = await mirror_of(approval)

    async def sent() -> bool:
        return await mirror.deliveries.filter(status="sent").acount() >= count

    await eventually(sent)


async def requested_and_mailed(
    temporal: TemporalClient, customer: AbstractBaseUser, mailbox: Mailbox, address: str
) -> tuple[PendingApproval, ReceivedMail]:
    approval = await refund_requested(temporal, customer)
    [mail] = await mailbox.wait_for(address)
    return approval, mail


# --- who is asked ------------------------------------------------------------------------


async def test_a_new_request_is_emailed_to_each_reviewer_it_is_routed_to(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    await ReviewerProfile.objects.acreate(
        user=rita, email="rita.reviews@example.com", time_zone="Europe/Berlin"
    )
    away = await reviewer_create("otto")
    await ReviewerProfile.objects.acreate(
        user=away, out_of_office_until=timezone.now() + dt.timedelta(days=3)
    )
    other_tool = await reviewer_create("tess")
    await ReviewerProfile.objects.acreate(user=other_tool, tools="send_customer_email")
    await auser_create(username="norm")  # no review permission: never asked

    approval = await refund_requested(temporal, customer, amount="120")
    [mail] = await mailbox.wait_for("rita.reviews@example.com")
    await mailbox.wait_for("ravi@example.com")

    mirror = await mirror_of(approval)

    async def recorded() -> list[tuple[str, str, str]]:
        rows = [d async for d in mirror.deliveries.select_related("reviewer").all()]
        done = rows and all(d.status == "sent" for d in rows)
        return sorted((d.label, d.channel, d.status) for d in rows) if done else []

    assert await eventually(recorded) == [("ravi", "email", "sent"), ("rita", "email", "sent")]
    assert {r for m in mailbox.received for r in m.recipients} == {
        "rita.reviews@example.com",
        "ravi@example.com",
    }
    assert mail.subject == f"Approval needed: {mirror.summary}"
    assert mirror.summary.startswith("Refund 120.00 EUR on order #")
    assert '"amount": "120.00"' in mail.text or '"amount": 120' in mail.text
    if mirror.reason:
        assert mirror.reason.splitlines()[0] in mail.text
    with timezone.override(BERLIN):
        deadline = dateformat.format(timezone.localtime(mirror.deadline), "D j M Y, H:i T")
    assert f"Deadline:      {deadline} (Europe/Berlin)" in mail.text
    approve, reject = mail.link("Approve"), mail.link("Reject")
    assert approve.startswith("http://testserver/reviews/email/") and approve != reject
    assert f'href="{approve}"' in mail.html and f'href="{reject}"' in mail.html
    # The links expire with the deadline and are bound to this reviewer and these arguments.
    link = await ApprovalLink.objects.aget(approval=mirror, reviewer=rita)
    assert (link.expires_at, link.arguments_hash) == (mirror.deadline, mirror.arguments_hash)

    # The workflow's record says who was asked where.
    events = await history(temporal, uuid.UUID(approval.conversation_id))
    results = [
        json.loads(e.activity_task_completed_event_attributes.result.payloads[0].data)
        for e in of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    ]
    asked = [r["asked"] for r in results if "asked" in r]
    assert sorted(asked[0]) == ["email:ravi", "email:rita"]


async def test_a_policy_s_group_names_who_is_asked_and_never_the_requester(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    group = await Group.objects.acreate(name="Refund approvers")
    await ravi.groups.aadd(group)  # type: ignore[attr-defined]
    await ApprovalPolicy.objects.acreate(tool_name="issue_refund", reviewer_group=group)

    by_customer = await refund_requested(temporal, customer)
    # A reviewer asking for a refund is not asked to approve it: with nobody else in the
    # group, every available reviewer is asked instead.
    by_ravi = await refund_requested(temporal, ravi)

    async def asked(approval: PendingApproval) -> list[str]:
        mirror = await mirror_of(approval)
        rows = [d async for d in mirror.deliveries.select_related("reviewer").all()]
        sent = rows and all(d.status == "sent" for d in rows)
        return sorted(d.asked for d in rows) if sent else []

    assert await eventually(lambda: asked(by_customer)) == ["email:ravi"]
    assert await eventually(lambda: asked(by_ravi)) == ["email:rita"]
    assert sorted(r for m in mailbox.received for r in m.recipients) == [
        "ravi@example.com",
        "rita@example.com",
    ]


async def test_reviewers_of_an_agent_are_asked_about_its_requests_only(
    mailbox: Mailbox, customer: AbstractBaseUser, rita: AbstractBaseUser, ravi: AbstractBaseUser
) -> None:
    await ReviewerProfile.objects.acreate(user=rita, agents="billing")
    await ReviewerProfile.objects.acreate(user=ravi, agents="support, returns")
    conversation = await Conversation.objects.acreate(owner=customer, title="Billing")
    now = timezone.now()
    arguments = '{"amount":"5.00","order_id":1,"reason":"r"}'
    # The notification the workflow sends for a call of the "billing" agent.
    pending = PendingApproval(
        call_id="call_billing",
        conversation_id=str(conversation.id),
        requester_id=customer.pk,
        tool="issue_refund",
        arguments=arguments,
        arguments_hash=arguments_hash(arguments),
        summary="Refund 5.00 EUR on order #1",
        reason="The customer was charged twice.",
        requested_at=now.isoformat(),
        deadline=(now + dt.timedelta(hours=1)).isoformat(),
        timeout_action="reject",
        agent="billing",
    )
    notify = ApprovalActivity(product_ports()).notify_approval

    result = await ActivityEnvironment().run(
        notify, ApprovalEvent(kind="requested", approval=pending)
    )

    assert result.asked == ["email:rita"]
    assert [m.recipients for m in mailbox.received] == [["rita@example.com"]]
    assert (await Approval.objects.aget(call_id="call_billing")).agent == "billing"


# --- the link's page: GET changes nothing, a POST from the reviewer's session decides ------


async def test_opening_a_link_changes_nothing_and_asks_to_confirm(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer, extra=f" {XSS}")
    [mail] = await mailbox.wait_for("rita@example.com")
    client = await logged_in(rita)

    page = await client.get(path_of(mail.link("Approve")))
    again = await client.get(path_of(mail.link("Reject")))

    assert page.status_code == 200
    text = page_text(page)
    assert f"Approve: {(await mirror_of(approval)).summary}" in text
    assert "Nothing has happened yet" in text
    assert '<button class="approve">Approve</button>' in body(page)
    assert again.status_code == 200
    assert 'name="reason"' in body(again) and '<button class="reject">Reject</button>' in body(
        again
    )
    assert await still_pending(approval)
    assert not await ApprovalLink.objects.filter(used_at__isnull=False).aexists()
    # What the user and the model wrote is shown as text, in the page and in the mail.
    assert XSS in mail.text and XSS in text
    assert executable_markup(body(page)) == [] and executable_markup(mail.html) == []


async def test_a_decision_without_the_page_s_csrf_token_is_refused(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    browser = AsyncClient(enforce_csrf_checks=True)
    await browser.aforce_login(rita)
    link = path_of(mail.link("Approve"))
    page = await browser.get(link)
    assert page.status_code == 200 and browser.cookies["csrftoken"].value

    forged = await browser.post(link, headers={"Origin": "http://evil.example"})
    tokenless = await browser.post(link)

    assert forged.status_code == tokenless.status_code == 403
    assert await still_pending(approval)
    assert not await ApprovalLink.objects.filter(used_at__isnull=False).aexists()
    token = browser.cookies["csrftoken"].value
    assert (await browser.post(link, headers={"X-CSRFToken": token})).status_code == 200
    assert (await decided(approval)).decision_channel == "email"


async def test_a_reviewer_who_is_not_signed_in_logs_in_and_comes_back_to_the_link(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    _, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    link = path_of(mail.link("Approve"))
    visitor = AsyncClient()

    first = await visitor.get(link)
    login_url = first["Location"]
    assert first.status_code == 302 and login_url.startswith("/accounts/login/?next=")
    login_page = await visitor.get(login_url)
    logged = await visitor.post(
        "/accounts/login/",
        {"username": "rita", "password": PASSWORD, "next": login_page.context["next"]},
    )

    assert logged.status_code == 302 and logged["Location"] == link
    assert "Nothing has happened yet" in page_text(await visitor.get(link))


async def test_the_login_s_next_never_leaves_the_site(rita: AbstractBaseUser) -> None:
    for target in ("https://evil.example/reviews/email/x/", "//evil.example/", "/\\evil.example"):
        visitor = AsyncClient()
        logged = await visitor.post(
            "/accounts/login/", {"username": "rita", "password": PASSWORD, "next": target}
        )
        assert logged.status_code == 302
        assert logged["Location"] == "/", target


async def test_approving_by_email_decides_through_the_workflow_once(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    client = await logged_in(rita)
    client.cookies["tz"] = "Europe%2FBerlin"

    response = await client.post(path_of(mail.link("Approve")))

    assert response.status_code == 200
    row = await decided(approval)
    assert (row.status, row.decided_by, row.decision_channel) == ("approved", rita, "email")
    assert row.decided_at is not None
    at = row.decided_at.astimezone(BERLIN)
    assert re.match(rf"Approved by rita via email at {at:%H:%M}\.", result_text(response)), (
        result_text(response)
    )
    await eventually(lambda: refunds_of(approval))
    assert await refunds_of(approval) == 1
    # The workflow's record: the decision came by email.
    events = await history(temporal, uuid.UUID(approval.conversation_id))
    accepted = of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    inputs = [
        json.loads(
            e.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads[
                0
            ].data
        )
        for e in accepted
    ]
    assert [i["channel"] for i in inputs if "arguments_hash" in i] == ["email"]
    # A history with a channel replays against today's workflow.
    handle = temporal.get_workflow_handle(conversation_workflow_id(approval.conversation_id))
    await Replayer(workflows=[ConversationWorkflow]).replay_workflow(await handle.fetch_history())


async def test_rejecting_by_email_needs_a_reason(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    client = await logged_in(rita)
    link = path_of(mail.link("Reject"))

    empty = await client.post(link, {"reason": "  "})
    assert empty.status_code == 422
    assert "A rejection needs a reason" in page_text(empty)
    assert await still_pending(approval)

    rejected = await client.post(link, {"reason": "The order was a gift; refund the giver."})
    assert rejected.status_code == 200
    assert result_text(rejected).startswith("Rejected by rita via email at")
    row = await decided(approval)
    assert (row.status, row.decision_reason, row.decision_channel) == (
        "rejected",
        "The order was a gift; refund the giver.",
        "email",
    )
    assert await refunds_of(approval) == 0


# --- links that must not decide -----------------------------------------------------------


async def test_a_used_link_is_refused_and_so_is_its_twin(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    client = await logged_in(rita)
    assert (await client.post(path_of(mail.link("Approve")))).status_code == 200

    reused = await client.post(path_of(mail.link("Approve")))
    twin = await client.post(path_of(mail.link("Reject")), {"reason": "changed my mind"})

    for response in (reused, twin):
        assert response.status_code == 409
        assert "This link was already used" in result_text(response)
    row = await decided(approval)
    assert row.status == "approved"
    assert await refunds_of(approval) == 1


async def test_a_forged_link_is_refused(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    client = await logged_in(rita)
    genuine = path_of(mail.link("Approve")).removeprefix("/reviews/email/").rstrip("/")
    link = await ApprovalLink.objects.aget(reviewer=rita)
    signed_elsewhere = signing.dumps(
        {"l": link.pk, "n": link.nonce, "r": rita.pk, "h": link.arguments_hash, "a": "approve"},
        salt="some.other.purpose",
    )
    flipped = genuine[:-3] + ("A" if genuine[-3] != "A" else "B") + genuine[-2:]

    for token in (flipped, signed_elsewhere, "x" * 700, "not-a-token"):
        for response in (
            await client.get(f"/reviews/email/{token}/"),
            await client.post(f"/reviews/email/{token}/"),
        ):
            assert response.status_code == 400, token
            assert "This link is not valid" in result_text(response)
    assert await still_pending(approval)


async def test_a_link_sent_to_another_reviewer_is_refused(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    [to_rita] = await mailbox.wait_for("rita@example.com")
    client = await logged_in(ravi)

    for response in (
        await client.get(path_of(to_rita.link("Approve"))),
        await client.post(path_of(to_rita.link("Approve"))),
    ):
        assert response.status_code == 403
        assert "This link was sent to another reviewer" in result_text(response)
    assert await still_pending(approval)
    assert not await ApprovalLink.objects.filter(used_at__isnull=False).aexists()


async def test_an_expired_link_is_refused(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, _ = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    link = await ApprovalLink.objects.select_related("approval").aget(reviewer=rita)
    # A link whose deadline has passed, as an email about that request would carry it.
    link.expires_at = timezone.now() - dt.timedelta(seconds=1)
    await link.asave(update_fields=["expires_at"])
    client = await logged_in(rita)
    token = link_token(link, "approve")

    for response in (
        await client.get(f"/reviews/email/{token}/"),
        await client.post(f"/reviews/email/{token}/"),
    ):
        assert response.status_code == 410
        assert "This link expired at" in result_text(response)
    assert await still_pending(approval)


async def test_a_link_for_other_arguments_is_refused(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, _ = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    link = await ApprovalLink.objects.select_related("approval").aget(reviewer=rita)
    # The email showed other arguments than the ones waiting now.
    link.arguments_hash = "0123456789abcdef"
    await link.asave(update_fields=["arguments_hash"])
    client = await logged_in(rita)
    token = link_token(link, "approve")

    for response in (
        await client.get(f"/reviews/email/{token}/"),
        await client.post(f"/reviews/email/{token}/"),
    ):
        assert response.status_code == 409
        assert "The arguments changed since this email was sent" in result_text(response)
    assert await still_pending(approval)
    assert await refunds_of(approval) == 0


async def test_a_late_answer_by_email_says_who_decided_where_and_when(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    dashboard = await logged_in(ravi)
    first = await dashboard.post(
        f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
        {"action": "approve", "arguments_hash": approval.arguments_hash},
    )
    assert first.status_code == 302
    row = await decided(approval)
    assert row.decided_at is not None
    client = await logged_in(rita)
    client.cookies["tz"] = "Europe%2FBerlin"

    late_look = await client.get(path_of(mail.link("Reject")))
    late_post = await client.post(path_of(mail.link("Reject")), {"reason": "no"})

    expected = (
        f"Already approved by ravi via the dashboard at {row.decided_at.astimezone(BERLIN):%H:%M}."
    )
    for response in (late_look, late_post):
        assert response.status_code == 409
        assert result_text(response) == expected
    assert (await mirror_of(approval)).status == "approved"
    assert await refunds_of(approval) == 1


# --- at least once, never twice -------------------------------------------------------------


async def test_a_retried_notification_never_mails_twice_and_a_failed_send_is_retried(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    settings: SettingsWrapper,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval, _ = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    notify = ApprovalActivity(product_ports()).notify_approval
    env = ActivityEnvironment()

    # The request's notification again, as a retried activity would run it: nothing resent.
    again = await env.run(notify, ApprovalEvent(kind="requested", approval=approval))
    assert again.asked == ["email:rita"]
    assert len(mailbox.to("rita@example.com")) == 1

    # A reminder while the mail server is down: the attempt fails and says so...
    settings.EMAIL_PORT = free_port()
    reminder = ApprovalEvent(kind="reminder", approval=approval)
    with pytest.raises(ApplicationError) as failed:
        await env.run(notify, reminder)
    assert failed.value.type == "ApprovalDeliveryFailed"
    row = await ApprovalDelivery.objects.aget(kind="reminder", reviewer=rita)
    assert (row.status, row.attempts) == ("failed", 1)
    # ...and the retry, with the server back, sends it once.
    settings.EMAIL_PORT = mailbox.port
    env.info = dataclasses.replace(env.info, attempt=2)
    retried = await env.run(notify, reminder)
    env.info = dataclasses.replace(env.info, attempt=3)
    await env.run(notify, reminder)

    assert retried.asked == ["email:rita"]
    mails = mailbox.to("rita@example.com")
    assert [m.subject.split(":")[0] for m in mails] == ["Approval needed", "Reminder"]
    await row.arefresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)


async def test_after_the_last_attempt_a_failed_send_is_recorded_and_the_approval_goes_on(
    temporal: TemporalClient,
    worker: object,
    settings: SettingsWrapper,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    approval = await refund_requested(temporal, customer)

    mirror = await mirror_of(approval)

    async def given_up() -> ApprovalDelivery | None:
        row = await mirror.deliveries.filter(reviewer=rita).afirst()
        return row if row is not None and row.attempts >= 3 else None

    row = await eventually(given_up, timeout=30)
    assert row.status == "failed" and "ConnectionRefusedError" in row.error
    events = await history(temporal, uuid.UUID(approval.conversation_id))
    results = [
        json.loads(e.activity_task_completed_event_attributes.result.payloads[0].data)
        for e in of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    ]
    assert ["email:rita (failed)"] in [r.get("asked") for r in results]
    # The request waits on the dashboard all the same.
    assert await still_pending(approval)


# --- reminders and escalation ----------------------------------------------------------------


async def test_the_reminder_goes_out_by_email_and_escalates_to_the_second_group(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    boss = await reviewer_create("bea")
    first, second = (
        await Group.objects.acreate(name="Refunds"),
        await Group.objects.acreate(name="Refund escalation"),
    )
    await rita.groups.aadd(first)  # type: ignore[attr-defined]
    await boss.groups.aadd(second)  # type: ignore[attr-defined]
    await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund",
        reviewer_group=first,
        escalation_group=second,
        deadline_seconds=40,
        remind_at_share="0.10",  # a reminder after 4 s
    )
    approval = await refund_requested(temporal, customer)
    assert [m.recipients for m in await mailbox.wait_for("rita@example.com")] == [
        ["rita@example.com"]
    ]
    assert mailbox.to("bea@example.com") == []

    reminded = await mailbox.wait_for("rita@example.com", count=2)
    [escalated] = await mailbox.wait_for("bea@example.com")

    assert reminded[1].subject.startswith("Reminder: still waiting for a decision: Refund")
    assert escalated.subject.startswith("Escalated: waiting for a decision: Refund")
    # The escalated reviewer's link decides like any other.
    client = await logged_in(boss)
    assert (await client.post(path_of(escalated.link("Approve")))).status_code == 200
    row = await decided(approval)
    assert (row.decided_by, row.decision_channel) == (boss, "email")
    await all_sent(approval, 3)
    history_page = page_text(await (await logged_in(rita)).get("/reviews/history/"))
    assert "bea via email" in history_page
    assert "Asked by email: rita" in history_page
    assert "Reminded by email: rita" in history_page
    assert "Escalated by email: bea" in history_page


async def test_the_history_page_and_the_admin_show_every_channel(
    temporal: TemporalClient,
    worker: object,
    mailbox: Mailbox,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval, mail = await requested_and_mailed(temporal, customer, mailbox, "rita@example.com")
    await mailbox.wait_for("ravi@example.com")
    assert (await (await logged_in(rita)).post(path_of(mail.link("Approve")))).status_code == 200
    row = await decided(approval)
    await all_sent(approval, 2)

    page = await (await logged_in(ravi)).get("/reviews/history/?channel=email")
    none = await (await logged_in(ravi)).get("/reviews/history/?channel=slack")
    admin = await auser_create(username="root", is_staff=True, is_superuser=True)
    change = await (await logged_in(admin)).get(f"/admin/reviews/approval/{row.pk}/change/")
    listing = await (await logged_in(admin)).get("/admin/reviews/approval/?decision_channel=email")

    text = page_text(page)
    assert "rita via email" in text and "Asked by email: ravi, rita" in text
    assert "No decisions match." in page_text(none)
    change_text = page_text(change)
    assert "rita (rita@example.com)" in change_text and "ravi (ravi@example.com)" in change_text
    assert "Decision channel: email" in change_text or "email" in change_text
    assert row.summary in page_text(listing)


def test_the_retired_reminder_list_is_pointed_out(settings: SettingsWrapper) -> None:
    settings.APPROVAL_REMINDER_EMAILS = ["ops@example.com"]
    found = [m for m in checks.run_checks() if m.id == "reviews.W001"]
    assert found and "retired" in found[0].msg
    settings.APPROVAL_REMINDER_EMAILS = []
    assert not [m for m in checks.run_checks() if m.id == "reviews.W001"]
