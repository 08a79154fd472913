"""Approvals on Slack, with real parts: a real Temporal server and worker, the scripted
model, a stand-in for Slack's Web API at the network boundary (slack-sdk's client talks
to it over HTTP), and interactivity requests signed exactly as Slack signs them."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
import zoneinfo

import pytest
import pytest_asyncio
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient
from pytest_django.fixtures import Settings as SettingsWrapper
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient

from reviews.models import Approval, ApprovalDelivery, ApprovalPolicy, ReviewerProfile
from shop.models import Refund
from temporal_worker import client as temporal_client
from temporal_worker.contracts.approvals import PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from tests.approvals import pending_approvals_terminate, refund_requested, reviewer_create
from tests.factories import auser_create
from tests.helpers import body, eventually, history, logged_in, of_type
from tests.reviews.channels_support import (
    SlackCall,
    SlackStandIn,
    block_action,
    button,
    interaction_body,
    message_text,
    slack_headers,
    view_submission,
)
from tests.reviews.conftest import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINT = "/reviews/slack/interactivity/"
RITA_SLACK = "U0RITA"
RAVI_SLACK = "U0RAVI"


@pytest_asyncio.fixture(autouse=True)
async def no_leftover_approvals(temporal: TemporalClient) -> None:
    await pending_approvals_terminate(temporal)


@pytest_asyncio.fixture
async def customer() -> AbstractBaseUser:
    return await auser_create(username="carla")


@pytest_asyncio.fixture
async def rita() -> AbstractBaseUser:
    user = await reviewer_create("rita")
    await ReviewerProfile.objects.acreate(
        user=user, slack_user_id=RITA_SLACK, time_zone="Europe/Berlin"
    )
    return user


@pytest_asyncio.fixture
async def ravi() -> AbstractBaseUser:
    user = await reviewer_create("ravi")
    await ReviewerProfile.objects.acreate(user=user, slack_user_id=RAVI_SLACK)
    return user


@pytest_asyncio.fixture
async def approvals_channel() -> ApprovalPolicy:
    return await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund", slack_channel="#approvals"
    )


async def send_signed(
    payload: dict[str, object], *, secret: str = SLACK_SIGNING_SECRET, timestamp: int | None = None
) -> HttpResponse:
    data = interaction_body(payload)
    return await AsyncClient().post(
        ENDPOINT,
        data=data,
        content_type="application/x-www-form-urlencoded",
        headers=slack_headers(data, secret, timestamp=timestamp),
    )


async def posted_request(slack: SlackStandIn, approval: PendingApproval) -> SlackCall:
    async def found() -> SlackCall | None:
        for call in slack.of("chat.postMessage"):
            if approval.call_id in json.dumps(call.body) and approval.conversation_id in json.dumps(
                call.body
            ):
                return call
        return None

    return await eventually(found)


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


async def updated_message(slack: SlackStandIn, posted: SlackCall, ts: str) -> SlackCall:
    async def found() -> SlackCall | None:
        updates = [c for c in slack.of("chat.update") if c.body.get("ts") == ts]
        return updates[-1] if updates else None

    return await eventually(found)


async def delivery_of(approval: PendingApproval) -> ApprovalDelivery:
    async def sent() -> ApprovalDelivery | None:
        return await ApprovalDelivery.objects.filter(
            approval__call_id=approval.call_id, channel="slack", status="sent"
        ).afirst()

    return await eventually(sent)


# --- the request, posted -------------------------------------------------------------------


async def test_a_request_is_posted_to_the_policy_s_channel_with_buttons(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(
        temporal, customer, extra=" <!channel> & <https://evil.example|x>"
    )

    posted = await posted_request(slack, approval)

    assert posted.body["channel"] == "#approvals"
    assert posted.authorization == f"Bearer {SLACK_BOT_TOKEN}"
    text = message_text(posted)
    mirror = await mirror_of(approval)
    assert "Approval needed" in text and mirror.summary.split(" <")[0] in text
    assert f"<!date^{int(mirror.deadline.timestamp())}^" in text
    assert "`issue_refund`" in text and "carla" in text
    # What the model or the user wrote cannot mention @channel nor make a link.
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|x&gt;" in text
    assert "<!channel>" not in text and "<https://evil.example" not in text
    approve, reject = button(posted, "approve"), button(posted, "reject")
    assert (
        approve["value"]
        == reject["value"]
        == (f"{approval.conversation_id}|{approval.call_id}|{approval.arguments_hash}")
    )
    assert approve["style"] == "primary" and reject["style"] == "danger"
    delivery = await delivery_of(approval)
    assert (delivery.recipient, delivery.slack_channel_id) == ("#approvals", "C0APPROVALS")
    # Exactly one message, whatever the retries.
    assert len(slack.of("chat.postMessage")) == 1


async def test_without_a_channel_each_reviewer_gets_a_direct_message(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)

    async def posted() -> list[str]:
        calls = slack.of("chat.postMessage")
        return sorted(str(c.body["channel"]) for c in calls) if len(calls) >= 2 else []

    assert await eventually(posted) == [RAVI_SLACK, RITA_SLACK]
    events = await history(temporal, uuid.UUID(approval.conversation_id))
    results = [
        json.loads(e.activity_task_completed_event_attributes.result.payloads[0].data)
        for e in of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    ]
    asked = next(r["asked"] for r in results if r.get("asked"))
    assert {"slack:rita", "slack:ravi"} <= set(asked)


async def test_a_failing_slack_api_is_tried_again_and_posts_once(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
) -> None:
    slack.fail["chat.postMessage"] = [503]
    approval = await refund_requested(temporal, customer)

    delivery = await delivery_of(approval)

    assert delivery.attempts == 2
    assert len([c for c in slack.of("chat.postMessage") if c.body["channel"] == "#approvals"]) == 2
    assert len(slack.of("chat.update")) == 0


# --- clicks -----------------------------------------------------------------------------------


async def test_approve_in_slack_decides_and_the_message_shows_the_outcome(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    delivery = await delivery_of(approval)

    response = await send_signed(
        block_action(slack_user=RITA_SLACK, action=button(posted, "approve"))
    )

    assert response.status_code == 200
    row = await decided(approval)
    assert (row.status, row.decided_by, row.decision_channel) == ("approved", rita, "slack")
    update = await updated_message(slack, posted, delivery.slack_ts)
    assert update.body["channel"] == "C0APPROVALS"
    text = message_text(update)
    assert re.search(r"Approved\* by rita via Slack at <!date\^\d+\^", text), text
    assert "actions" not in json.dumps(update.body["blocks"])  # no buttons left
    await eventually(lambda: refunds_of(approval))
    assert await refunds_of(approval) == 1
    assert slack.of("chat.postEphemeral") == []


async def test_reject_opens_a_modal_whose_reason_rejects(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    click = block_action(slack_user=RITA_SLACK, action=button(posted, "reject"))

    opened = await send_signed(click)

    assert opened.status_code == 200
    [modal] = slack.of("views.open")
    assert modal.body["trigger_id"] == click["trigger_id"]
    view = modal.body["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert view["callback_id"] == "reject_reason"
    assert await still_pending(approval)  # opening the form decides nothing

    empty = await send_signed(
        view_submission(
            slack_user=RITA_SLACK, private_metadata=view["private_metadata"], reason=" "
        )
    )
    assert json.loads(body(empty)) == {
        "response_action": "errors",
        "errors": {"reason": "A rejection needs a reason for the agent and the user."},
    }
    submitted = await send_signed(
        view_submission(
            slack_user=RITA_SLACK,
            private_metadata=view["private_metadata"],
            reason="Customer already got a voucher.",
        )
    )

    assert submitted.status_code == 200 and body(submitted) == ""
    row = await decided(approval)
    assert (row.status, row.decision_reason, row.decision_channel) == (
        "rejected",
        "Customer already got a voucher.",
        "slack",
    )
    delivery = await delivery_of(approval)
    update = await updated_message(slack, posted, delivery.slack_ts)
    assert "Rejected* by rita via Slack" in message_text(update)
    assert "Customer already got a voucher." in message_text(update)
    assert await refunds_of(approval) == 0


async def test_a_decision_on_the_dashboard_updates_the_slack_message_and_a_late_click_is_told(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    delivery = await delivery_of(approval)
    dashboard = await logged_in(ravi)
    await dashboard.post(
        f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
        {"action": "approve", "arguments_hash": approval.arguments_hash},
    )
    row = await decided(approval)
    assert row.decided_at is not None
    update = await updated_message(slack, posted, delivery.slack_ts)
    assert "Approved* by ravi via the dashboard" in message_text(update)

    late = await send_signed(block_action(slack_user=RITA_SLACK, action=button(posted, "approve")))
    late_reject = await send_signed(
        block_action(slack_user=RITA_SLACK, action=button(posted, "reject"))
    )

    assert late.status_code == late_reject.status_code == 200
    told = slack.of("chat.postEphemeral")
    assert len(told) == 2
    stamp = int(row.decided_at.timestamp())
    for call in told:
        assert call.body["user"] == RITA_SLACK and call.body["channel"] == "C0APPROVALS"
        assert call.body["text"].startswith("Already approved by ravi via the dashboard at ")
        assert f"<!date^{stamp}^" in call.body["text"]  # read in rita's own time zone
    assert slack.of("views.open") == []
    # A reject form opened before the decision and sent after: refused in the modal, with
    # the time in rita's zone (plain text has no Slack date tokens).
    late_modal = await send_signed(
        view_submission(
            slack_user=RITA_SLACK, private_metadata=button(posted, "reject")["value"], reason="No"
        )
    )
    berlin = row.decided_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert json.loads(body(late_modal))["errors"]["reason"] == (
        f"Already approved by ravi via the dashboard at {berlin:%b} {berlin.day}, "
        f"{berlin:%H:%M} {berlin.tzname()}."
    )
    assert await refunds_of(approval) == 1


async def test_slack_and_the_dashboard_racing_produce_exactly_one_effect(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    dashboard = await logged_in(ravi)

    from_slack, from_dashboard = await asyncio.gather(
        send_signed(block_action(slack_user=RITA_SLACK, action=button(posted, "approve"))),
        dashboard.post(
            f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
            {"action": "reject", "reason": "Too much", "arguments_hash": approval.arguments_hash},
            headers={"HX-Request": "true", "HX-Target": "decision-result"},
        ),
    )

    assert from_slack.status_code == from_dashboard.status_code == 200
    row = await decided(approval)
    told = [c.body["text"] for c in slack.of("chat.postEphemeral")]
    dashboard_said = body(from_dashboard)
    if row.decision_channel == "slack":
        assert (row.status, row.decided_by) == ("approved", rita)
        assert "Already approved by rita via Slack at" in dashboard_said
        assert told == []
        await eventually(lambda: refunds_of(approval))
    else:
        assert (row.status, row.decided_by, row.decision_channel) == ("rejected", ravi, "dashboard")
        assert "Rejected by ravi" in dashboard_said
        assert len(told) == 1 and told[0].startswith("Already rejected by ravi via the dashboard")
    await asyncio.sleep(0.5)  # a second effect would have had time to happen
    assert await refunds_of(approval) == (1 if row.status == "approved" else 0)
    delivery = await delivery_of(approval)
    await updated_message(slack, posted, delivery.slack_ts)
    assert len([c for c in slack.of("chat.update") if c.body["ts"] == delivery.slack_ts]) == 1


# --- requests that must not decide ------------------------------------------------------------


async def test_a_bad_signature_a_stale_timestamp_and_a_replay_are_refused(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    click = block_action(slack_user=RITA_SLACK, action=button(posted, "reject"))

    forged = await send_signed(click, secret="not-the-signing-secret")
    stale = await send_signed(click, timestamp=int(time.time()) - 6 * 60)
    unsigned = await AsyncClient().post(
        ENDPOINT, data=interaction_body(click), content_type="application/x-www-form-urlencoded"
    )
    data = interaction_body(click)
    headers = slack_headers(data, SLACK_SIGNING_SECRET)
    first = await AsyncClient().post(
        ENDPOINT, data=data, content_type="application/x-www-form-urlencoded", headers=headers
    )
    replayed = await AsyncClient().post(
        ENDPOINT, data=data, content_type="application/x-www-form-urlencoded", headers=headers
    )
    tampered = await AsyncClient().post(
        ENDPOINT,
        data=data.replace("reject", "approve"),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )

    assert [r.status_code for r in (forged, stale, unsigned, replayed, tampered)] == [401] * 5
    assert first.status_code == 200
    assert len(slack.of("views.open")) == 1  # the one genuine click
    assert await still_pending(approval)


async def test_an_unmapped_slack_user_or_one_who_may_not_review_is_refused(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    posted = await posted_request(slack, approval)
    no_longer = await auser_create(username="former")
    await ReviewerProfile.objects.acreate(user=no_longer, slack_user_id="U0FORMER")

    for slack_user in ("U0STRANGER", "U0FORMER"):
        approve = await send_signed(
            block_action(slack_user=slack_user, action=button(posted, "approve"))
        )
        assert approve.status_code == 200
        submit = await send_signed(
            view_submission(
                slack_user=slack_user,
                private_metadata=button(posted, "approve")["value"],
                reason="no",
            )
        )
        errors = json.loads(body(submit))["errors"]["reason"]
        assert errors.startswith("Your Slack account is not linked to a reviewer")
    told = slack.of("chat.postEphemeral")
    assert [c.body["user"] for c in told] == ["U0STRANGER", "U0FORMER"]
    assert all("not linked to a reviewer" in c.body["text"] for c in told)
    assert slack.of("views.open") == []
    assert await still_pending(approval)


async def test_a_button_this_app_did_not_send_decides_nothing(
    temporal: TemporalClient,
    worker: object,
    slack: SlackStandIn,
    approvals_channel: ApprovalPolicy,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    await posted_request(slack, approval)
    other_arguments = f"{approval.conversation_id}|{approval.call_id}|0123456789abcdef"

    for value in ("garbage", f"{approval.conversation_id}|x", other_arguments):
        response = await send_signed(
            block_action(slack_user=RITA_SLACK, action={"action_id": "approve", "value": value})
        )
        assert response.status_code == 200
    told = [c.body["text"] for c in slack.of("chat.postEphemeral")]
    assert told[:2] == ["This button is not one this app sent; nothing was decided."] * 2
    assert told[2] == "The arguments changed since you loaded them; reload and decide again."
    assert await still_pending(approval)


async def test_another_workspace_is_refused(
    slack: SlackStandIn, settings: SettingsWrapper, rita: AbstractBaseUser
) -> None:
    settings.SLACK_TEAM_ID = "T0TEAM"
    action = {"action_id": "approve", "value": f"{uuid.uuid4()}|call_1|0123456789abcdef"}

    other = await send_signed(block_action(slack_user=RITA_SLACK, action=action, team="T0OTHER"))

    assert other.status_code == 403
    assert slack.calls == []


# --- off without settings ---------------------------------------------------------------------


async def test_without_slack_settings_the_feature_is_off_and_email_still_works(
    temporal: TemporalClient,
    worker: object,
    settings: SettingsWrapper,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
) -> None:
    settings.SLACK_BOT_TOKEN = settings.SLACK_SIGNING_SECRET = ""
    await ApprovalPolicy.objects.acreate(tool_name="issue_refund", slack_channel="#approvals")

    approval = await refund_requested(temporal, customer)
    mirror = await mirror_of(approval)

    async def emailed() -> list[str]:
        return [d.asked async for d in mirror.deliveries.select_related("reviewer")]

    assert await eventually(emailed) == ["email:rita"]
    endpoint = await send_signed(block_action(slack_user=RITA_SLACK, action={"action_id": "x"}))
    assert endpoint.status_code == 404
    # The dashboard decides as before, and the decision's notification has no Slack to update.
    dashboard = await logged_in(rita)
    await dashboard.post(
        f"/reviews/{approval.conversation_id}/{approval.call_id}/decide/",
        {"action": "approve", "arguments_hash": approval.arguments_hash},
    )
    assert (await decided(approval)).decision_channel == "dashboard"
