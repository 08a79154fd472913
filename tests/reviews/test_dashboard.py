"""The reviewer dashboard end to end: real Temporal server, worker, scripted model, websocket.

Pending approvals come from real conversations: a customer asks for a refund, the
scripted model calls the `issue_refund` write tool, and the workflow's approval gate
waits for a reviewer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from chatapp.models import Message
from config.asgi import application
from reviews.models import Approval, ApprovalPolicy
from shop.models import Refund
from temporal_worker import client as temporal_client
from temporal_worker.client import PendingListing
from temporal_worker.contracts.approvals import PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.worker import activities, product_ports
from temporal_worker.workflows import ConversationWorkflow
from tests.approvals import (
    listed_pending,
    pending_approvals_terminate,
    refund_requested,
    reviewer_create,
    row_id,
)
from tests.factories import auser_create
from tests.helpers import body, eventually, html_element, html_text, logged_in, session_cookie
from tests.reviews.memoless_workflow import MemolessConversationWorkflow

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_ORIGIN = b"http://127.0.0.1:8000"
RECEIVE_TIMEOUT = 15.0
XSS = "<img src=x onerror=alert(1)>"


# --- fixtures and helpers -------------------------------------------------------


@pytest_asyncio.fixture(autouse=True)
async def no_leftover_approvals(temporal: TemporalClient) -> AsyncIterator[None]:
    """Before and after each test: the listing must see only this test's approvals."""
    await pending_approvals_terminate(temporal)
    yield
    await pending_approvals_terminate(temporal)


def htmx(target: str) -> dict[str, str]:
    return {
        "HX-Request": "true",
        "HX-Target": target,
        "HX-Current-URL": "http://testserver/reviews/",
    }


def decided_marker(dom_id: str) -> str:
    """What hides a decided row (reviews.js then removes it) from the page and the socket."""
    return f'<span id="{dom_id}-state" class="row-state decided" hx-swap-oob="true"></span>'


def decide_url(approval: PendingApproval, action: str = "decide") -> str:
    return f"/reviews/{approval.conversation_id}/{approval.call_id}/{action}/"


async def decide(
    client: AsyncClient,
    approval: PendingApproval,
    *,
    action: str = "approve",
    reason: str = "",
    edited: str = "",
    target: str | None = None,
) -> HttpResponse:
    data = {"action": action, "reason": reason, "arguments_hash": approval.arguments_hash}
    if edited:
        data["edited_arguments"] = edited
    return await client.post(
        decide_url(approval), data, headers=htmx(target or f"{row_id(approval)}-result")
    )


async def transcript(conversation_id: str) -> list[Message]:
    return [
        m async for m in Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    ]


async def answered_after_tool(conversation_id: str) -> list[Message]:
    """The transcript once the tool's result and the agent's answer to it are recorded."""

    async def probe() -> list[Message] | None:
        messages = await transcript(conversation_id)
        tools = [i for i, m in enumerate(messages) if m.role == Message.Role.TOOL]
        if tools and any(
            m.role == Message.Role.ASSISTANT and m.content for m in messages[tools[-1] + 1 :]
        ):
            return messages
        return None

    return await eventually(probe)


def reviewers_socket(cookie: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", GOOD_ORIGIN), (b"host", b"127.0.0.1:8000")]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/reviews/", headers=headers)


async def frame_with(socket: WebsocketCommunicator, needle: str) -> str:
    """The first frame containing `needle` (frames for other rows are skipped)."""
    while True:
        frame = await socket.receive_from(timeout=RECEIVE_TIMEOUT)
        if needle in frame:
            return frame


@pytest_asyncio.fixture
async def customer() -> AbstractBaseUser:
    return await auser_create(username="carla")


@pytest_asyncio.fixture
async def rita() -> AbstractBaseUser:
    return await reviewer_create("rita")


@pytest_asyncio.fixture
async def ravi() -> AbstractBaseUser:
    return await reviewer_create("ravi")


# --- access ---------------------------------------------------------------------


async def test_non_reviewers_get_403_on_pages_decisions_and_the_socket(
    customer: AbstractBaseUser,
) -> None:
    client = await logged_in(customer)
    target = f"/reviews/{uuid.uuid4()}/call_1/"
    item = {"item": f"{uuid.uuid4()}:call_1:abc", "action": "approve"}

    for url in ("/reviews/", "/reviews/history/", target):
        assert (await client.get(url)).status_code == 403, url
    decision = {"action": "approve", "arguments_hash": "abc"}
    assert (await client.post(f"{target}decide/", decision)).status_code == 403
    assert (await client.post(f"{target}claim/")).status_code == 403
    assert (await client.post("/reviews/bulk/", item)).status_code == 403

    anonymous = await AsyncClient().get("/reviews/")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/accounts/login/")

    for cookie in (await session_cookie(customer), None):
        socket = reviewers_socket(cookie)
        connected, _ = await socket.connect()
        assert not connected


# --- the list -------------------------------------------------------------------


async def test_dashboard_lists_pending_approvals_from_several_workflows_escaped(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    other = await auser_create(username="otto")
    approvals = [
        await refund_requested(temporal, customer, amount="120", extra=f" {XSS}"),
        await refund_requested(temporal, customer, amount="35.50"),
        await refund_requested(temporal, other, amount="80"),
    ]
    client = await logged_in(rita)

    page = body(await client.get("/reviews/"))

    rows = {a.call_id: html_element(page, row_id(a)) for a in approvals}
    assert all(rows.values()), "every pending approval has its row"
    first = rows[approvals[0].call_id]
    assert first is not None
    text = html_text(first)
    assert "carla" in text
    assert "issue_refund" in text
    assert '"amount": "120.00"' in text
    assert "Refund 120.00 EUR on order" in text
    assert XSS in text  # shown as text...
    assert XSS not in page  # ...never as markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in first
    workflow = conversation_workflow_id(approvals[0].conversation_id)
    assert f"/namespaces/default/workflows/{workflow}" in first
    assert "To do that I will call `issue_refund`" in text  # the agent's own words
    assert "Claim" in text and "Approve" in text and "Reject" in text
    assert "otto" in html_text(rows[approvals[2].call_id] or "")
    assert 'ws-connect="/ws/reviews/"' in page


async def test_the_list_comes_from_memos_without_a_query_and_follows_a_claim(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer, amount="42")

    listing = await eventually(_listing_with(approval.call_id))
    assert listing.queried == 0, "a workflow with the memo needs no Query"
    listed = next(item for item in await listed_pending() if item.call_id == approval.call_id)
    assert listed == approval  # memo and audit together say what the Query would answer

    client = await logged_in(rita)
    await client.post(decide_url(approval, "claim"), headers=htmx(f"{row_id(approval)}-claim"))

    async def claimed() -> PendingApproval | None:
        item = next((i for i in await listed_pending() if i.call_id == approval.call_id), None)
        return item if item is not None and item.claimed_by == "rita" else None

    assert (await eventually(claimed)).claimed_by_id == rita.pk
    await decide(client, approval)
    await eventually(_listing_without(approval.call_id))


async def test_a_page_at_a_time_the_oldest_first_and_the_next_on_demand(
    temporal: TemporalClient,
    worker: object,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    settings: object,
) -> None:
    settings.REVIEWS_DASHBOARD_PAGE_ROWS = 2  # type: ignore[attr-defined]
    approvals = [await refund_requested(temporal, customer, amount=str(a)) for a in (11, 12, 13)]
    await eventually(_listing_with(approvals[-1].call_id))
    client = await logged_in(rita)

    page = body(await client.get("/reviews/"))

    assert html_element(page, row_id(approvals[0])) and html_element(page, row_id(approvals[1]))
    assert not html_element(page, row_id(approvals[2]))
    assert "1 more is pending." in html_text(page)
    # The count is of every pending request, not only the rows shown.
    assert re.search(r'id="pending-count"[^>]*>3<', page)
    more = re.search(r'hx-get="(/reviews/more/\?[^"]+)"', page)
    assert more is not None

    next_url = more.group(1).replace("&amp;", "&")
    rest = body(await client.get(next_url, headers=htmx("approval-rows")))

    assert html_element(rest, row_id(approvals[2]))
    assert not html_element(rest, row_id(approvals[0]))
    # The note is replaced: nothing more waits, so no button.
    assert 'id="more-rows"' in rest and 'data-hidden="0"' in rest
    assert "/reviews/more/" not in rest


@pytest.mark.parametrize(
    "query",
    [
        "",
        "after=yesterday&conversation=00000000-0000-0000-0000-000000000000&call=c",
        "after=2026-12-01T10:00:00%2B00:00&conversation=not-a-uuid&call=c",
        f"after=2026-12-01T10:00:00%2B00:00&conversation={uuid.uuid4()}&call={'x' * 101}",
    ],
)
async def test_a_bad_next_page_address_is_refused_clearly(
    rita: AbstractBaseUser, query: str
) -> None:
    client = await logged_in(rita)

    response = await client.get(f"/reviews/more/?{query}")

    assert response.status_code == 400
    assert "error" in body(response)
    shown = await client.get(f"/reviews/more/?{query}", headers=htmx("more-rows-result"))
    assert shown.status_code == 200 and 'role="alert"' in body(shown)


async def test_a_workflow_from_before_the_memo_is_listed_through_a_query(
    temporal: TemporalClient, customer: AbstractBaseUser, settings: object, task_queue: str
) -> None:
    # A worker still running the pre-memo code: its workflows carry only search attributes.
    async with Worker(
        temporal,
        task_queue=task_queue,
        workflows=[MemolessConversationWorkflow],
        activities=activities(product_ports()),
    ):
        approval = await refund_requested(temporal, customer, amount="43")
        listing = await eventually(_listing_with(approval.call_id))

        assert listing.queried >= 1
        assert approval in [e.approval for e in listing.entries]
        page = body(await (await logged_in(await reviewer_create("rosa"))).get("/reviews/"))
        assert html_element(page, row_id(approval))


def _listing_with(call_id: str) -> Callable[[], Awaitable[PendingListing | None]]:
    async def probe() -> PendingListing | None:
        listing = await temporal_client.approvals_pending_list()
        return listing if any(e.call_id == call_id for e in listing.entries) else None

    return probe


def _listing_without(call_id: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        listing = await temporal_client.approvals_pending_list()
        return all(e.call_id != call_id for e in listing.entries)

    return probe


# --- live updates -----------------------------------------------------------------


async def test_new_request_arrives_as_a_row_and_a_decision_removes_it(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    socket = reviewers_socket(await session_cookie(rita))
    connected, _ = await socket.connect()
    assert connected
    try:
        approval = await refund_requested(temporal, customer, extra=f" {XSS}")
        dom_id = row_id(approval)

        inserted = await frame_with(socket, 'hx-swap-oob="beforeend:#approval-rows"')
        assert inserted.startswith('<tbody hx-swap-oob="beforeend:#approval-rows">')
        row = html_element(inserted, dom_id)
        assert row is not None and "data-fresh" in row
        assert "Refund 120.00 EUR on order" in html_text(row)
        assert XSS not in inserted

        response = await decide(await logged_in(rita), approval)
        assert response.status_code == 200

        removed = await frame_with(socket, "row-state decided")
        assert removed.strip() == decided_marker(dom_id)
    finally:
        await socket.disconnect()


async def test_a_reminder_marks_the_row_live_and_the_deadline_removes_it(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    await ApprovalPolicy.objects.acreate(
        tool_name="issue_refund",
        mode=ApprovalPolicy.Mode.ALWAYS,
        deadline_seconds=3,
        timeout_action=ApprovalPolicy.TimeoutAction.REJECT,
        remind_at_share=Decimal("0.34"),  # a reminder after 1 s
    )
    socket = reviewers_socket(await session_cookie(rita))
    assert (await socket.connect())[0]
    try:
        approval = await refund_requested(temporal, customer)
        dom_id = row_id(approval)

        reminded = await frame_with(socket, "reminder sent")
        assert reminded.startswith(f'<div id="{dom_id}-deadline" class="deadline-state reminded"')
        expired = await frame_with(socket, "row-state decided")
        assert expired.strip() == decided_marker(dom_id)
    finally:
        await socket.disconnect()
    mirror = await eventually(
        lambda: Approval.objects.filter(
            call_id=approval.call_id, status=Approval.Status.REJECTED
        ).afirst()
    )
    assert mirror.decided_by_system and mirror.reminded_at is not None
    history = body(await (await logged_in(rita)).get("/reviews/history/?reviewer=system"))
    assert "system (deadline passed)" in html_text(history)


# --- decisions --------------------------------------------------------------------


async def test_approve_runs_the_tool_and_the_agent_answers(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer)
    dom_id = row_id(approval)

    response = await decide(await logged_in(rita), approval)

    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#flash"
    page = body(response)
    assert "Approved: Refund 120.00 EUR on order" in html_text(page)
    assert decided_marker(dom_id) in page
    messages = await answered_after_tool(approval.conversation_id)
    tool = next(m for m in messages if m.role == Message.Role.TOOL)
    assert tool.status == Message.Status.COMPLETE
    assert '"amount": "120.00"' in tool.content
    refund = await Refund.objects.aget(conversation_id=approval.conversation_id)
    assert refund.amount == Decimal("120.00")
    mirror = await eventually(
        lambda: Approval.objects.filter(
            call_id=approval.call_id, status=Approval.Status.APPROVED
        ).afirst()
    )
    assert mirror.decided_by_id == rita.pk


async def test_reject_needs_a_reason_which_reaches_the_agent_and_the_history(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer)
    client = await logged_in(rita)
    result_id = f"{row_id(approval)}-result"

    without = await decide(client, approval, action="reject", reason="  ")
    assert without.headers["HX-Retarget"] == f"#{result_id}"
    assert "A rejection needs a reason" in html_text(body(without))

    reason = f"Refund already issued by phone {XSS}"
    response = await decide(client, approval, action="reject", reason=reason)

    assert "Rejected" in html_text(body(response))
    messages = await answered_after_tool(approval.conversation_id)
    tool = next(m for m in messages if m.role == Message.Role.TOOL)
    assert tool.status == Message.Status.ERROR
    assert '"status": "rejected"' in tool.content
    assert "Refund already issued by phone" in tool.content
    answer = messages[-1]
    assert answer.role == Message.Role.ASSISTANT
    assert "rejected by a reviewer: Refund already issued by phone" in answer.content
    assert not await Refund.objects.filter(conversation_id=approval.conversation_id).aexists()
    await eventually(
        lambda: Approval.objects.filter(
            call_id=approval.call_id, status=Approval.Status.REJECTED
        ).aexists()
    )

    history = body(await client.get("/reviews/history/?status=rejected&reviewer=rita"))
    assert reason in html_text(history)
    assert XSS not in history
    elsewhere = body(await client.get("/reviews/history/?status=approved"))
    assert "Refund already issued by phone" not in elsewhere


async def test_edit_the_arguments_then_approve(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer)
    client = await logged_in(rita)

    detail = body(await client.get(f"/reviews/{approval.conversation_id}/{approval.call_id}/"))
    textarea = html_element(detail, "edited-arguments")
    assert textarea is not None and "&quot;amount&quot;: &quot;120.00&quot;" in textarea

    not_json = await decide(client, approval, edited="{amount: 50", target="decision-result")
    assert not_json.headers["HX-Retarget"] == "#decision-result"
    assert "not valid JSON" in html_text(body(not_json))
    invalid = await decide(
        client,
        approval,
        edited=approval.arguments.replace('"120.00"', '"-5"'),
        target="decision-result",
    )
    assert "invalid arguments for issue_refund: amount" in html_text(body(invalid))

    edited = approval.arguments.replace('"120.00"', '"50"')
    response = await decide(client, approval, edited=edited, target="decision-result")

    assert "with edited arguments" in html_text(body(response))
    await answered_after_tool(approval.conversation_id)
    refund = await Refund.objects.aget(conversation_id=approval.conversation_id)
    assert refund.amount == Decimal("50.00")
    mirror = await eventually(
        lambda: Approval.objects.filter(
            call_id=approval.call_id, status=Approval.Status.APPROVED
        ).afirst()
    )
    assert mirror.edited_arguments is not None
    assert Decimal(mirror.edited_arguments["amount"]) == Decimal("50")
    history = body(await client.get("/reviews/history/"))
    assert "approved with:" in html_text(history)
    # The customer's page, reloaded: the card says what ran, that it was edited, by whom.
    page = body(await (await logged_in(customer)).get(f"/c/{approval.conversation_id}/"))
    [decision] = re.findall(r'<div class="small approval-decision">(.*?)</div>', page, re.S)
    text = " ".join(html_text(decision).split())
    assert "Refund 50.00 EUR" in text and "approved by rita" in text
    assert "rita edited the request; the agent asked: Refund 120.00 EUR" in text


async def test_a_stale_decision_says_who_decided_and_when(
    temporal: TemporalClient,
    worker: object,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    assert (await decide(await logged_in(rita), approval)).status_code == 200
    await eventually(
        lambda: Approval.objects.filter(
            call_id=approval.call_id, status=Approval.Status.APPROVED
        ).aexists()
    )

    late = await decide(await logged_in(ravi), approval, action="reject", reason="No")

    assert late.headers["HX-Retarget"] == f"#{row_id(approval)}-result"
    assert re.fullmatch(
        r"Already approved by rita via the dashboard at \d\d:\d\d\.", html_text(body(late)).strip()
    )


async def test_a_decision_on_a_conversation_that_never_existed_says_so(
    temporal: TemporalClient, rita: AbstractBaseUser
) -> None:
    ghost = uuid.uuid4()
    url = f"/reviews/{ghost}/call_ghost/decide/"
    data = {"action": "approve", "arguments_hash": "0" * 16}
    reviewer = await logged_in(rita)

    from_row = await reviewer.post(url, data, headers=htmx(f"approval-{ghost}-call_ghost-result"))
    page = await reviewer.post(url, data)

    assert html_text(body(from_row)).strip() == "This conversation does not exist."
    assert page.status_code == 404


async def test_claim_race_has_one_winner_shown_to_the_others_live(
    temporal: TemporalClient,
    worker: object,
    customer: AbstractBaseUser,
    rita: AbstractBaseUser,
    ravi: AbstractBaseUser,
) -> None:
    approval = await refund_requested(temporal, customer)
    dom_id = row_id(approval)
    watcher = await reviewer_create("wanda")
    socket = reviewers_socket(await session_cookie(watcher))
    assert (await socket.connect())[0]
    clients = {"rita": await logged_in(rita), "ravi": await logged_in(ravi)}
    try:
        responses = dict(
            zip(
                clients,
                await asyncio.gather(
                    *(
                        c.post(decide_url(approval, "claim"), headers=htmx(f"{dom_id}-claim"))
                        for c in clients.values()
                    )
                ),
                strict=True,
            )
        )

        won = [name for name, r in responses.items() if "Claimed by you" in body(r)]
        assert len(won) == 1, {name: html_text(body(r)) for name, r in responses.items()}
        winner = won[0]
        assert "HX-Retarget" not in responses[winner].headers  # into the row's claim state
        loser = "ravi" if winner == "rita" else "rita"
        lost = responses[loser]
        assert lost.headers["HX-Retarget"] == f"#{dom_id}-result"
        assert html_text(body(lost)).strip() == f"Already claimed by {winner}."

        live = await frame_with(socket, f"Claimed by {winner}")
        assert live.startswith(f'<span id="{dom_id}-claim" class="claim-state claimed"')
        assert 'hx-swap-oob="true"' in live
        mirror = await Approval.objects.select_related("claimed_by").aget(call_id=approval.call_id)
        assert mirror.claimed_by is not None and mirror.claimed_by.username == winner

        refused = await decide(clients[loser], approval)
        assert html_text(body(refused)).strip() == f"{winner} has claimed this request."
    finally:
        await socket.disconnect()


async def test_bulk_approve_decides_each_item_and_reports_each_result(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approvals = [await refund_requested(temporal, customer, amount=str(n)) for n in (10, 20, 30)]
    stale = await refund_requested(temporal, customer, amount="40")
    items = [f"{a.conversation_id}:{a.call_id}:{a.arguments_hash}" for a in approvals]
    items.append(f"{stale.conversation_id}:{stale.call_id}:0000000000000000")

    response = await (await logged_in(rita)).post(
        "/reviews/bulk/", {"item": items, "action": "approve"}, headers=htmx("bulk-result")
    )

    page = body(response)
    assert response.headers["HX-Retarget"] == "#bulk-result"
    assert "3 of 4 approved" in html_text(page)
    assert "The arguments changed since you loaded them" in html_text(page)
    for approval in approvals:
        assert decided_marker(row_id(approval)) in page
    assert row_id(stale) not in page
    for approval in approvals:
        await answered_after_tool(approval.conversation_id)
    amounts = sorted([r.amount async for r in Refund.objects.all()])
    assert amounts == [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")]


async def test_a_reviewer_cannot_decide_or_claim_their_own_request(
    temporal: TemporalClient, worker: object, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, rita)
    client = await logged_in(rita)

    page = body(await client.get("/reviews/"))
    row = html_element(page, row_id(approval))
    assert row is not None and "your request" in html_text(row)
    decided = await decide(client, approval)
    claimed = await client.post(
        decide_url(approval, "claim"), headers=htmx(f"{row_id(approval)}-claim")
    )

    assert html_text(body(decided)).strip() == "You cannot decide on your own request."
    assert html_text(body(claimed)).strip() == "You cannot review your own request."
    pending = await temporal.get_workflow_handle(
        conversation_workflow_id(approval.conversation_id)
    ).query(ConversationWorkflow.pending_approvals)
    assert [p.call_id for p in pending.items] == [approval.call_id]


async def test_admin_shows_the_audit_mirror_read_only_with_a_workflow_link(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer)
    admin = await auser_create(username="boss", is_staff=True, is_superuser=True)
    client = await logged_in(admin)
    mirror = await Approval.objects.aget(call_id=approval.call_id)

    listing = body(await client.get("/admin/reviews/approval/"))
    change = await client.get(f"/admin/reviews/approval/{mirror.pk}/change/")

    workflow = conversation_workflow_id(approval.conversation_id)
    assert f"/namespaces/default/workflows/{workflow}" in listing
    assert change.status_code == 200
    assert 'name="_save"' not in body(change)  # read only
    assert (await client.get("/admin/reviews/approval/add/")).status_code == 403
    policies = await client.get("/admin/reviews/approvalpolicy/add/")
    assert policies.status_code == 200


async def test_a_withdrawal_that_loses_the_race_says_who_decided_at_a_readable_time(
    temporal: TemporalClient, worker: object, customer: AbstractBaseUser, rita: AbstractBaseUser
) -> None:
    approval = await refund_requested(temporal, customer)
    assert (await decide(await logged_in(rita), approval)).status_code == 200
    user = await logged_in(customer)
    user.cookies["tz"] = "Europe%2FBerlin"  # what the page's script sets
    page = f"/c/{approval.conversation_id}/"

    late = await user.post(
        f"{page}approvals/{approval.call_id}/withdraw/",
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"},
    )

    flash = " ".join(html_text(html_element(body(late), "flash") or "").split())
    mirror = await Approval.objects.aget(call_id=approval.call_id)
    assert mirror.decided_at is not None
    in_berlin = mirror.decided_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert flash == f"Already approved by rita at {in_berlin:%H:%M}."
