"""The reviewer dashboard: pending approvals, decisions, claims, bulk decisions, history.

Reviewers only (`reviews.review_approvals`): anyone else gets 403. Thin views:
validate with a form, call one action or selector, render a page or a partial.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import AbstractUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget
from django_htmx.middleware import HtmxDetails

from reviews import actions, selectors
from reviews.forms import BulkDecisionForm, DecisionForm, HistoryFilterForm, MoreRowsForm
from temporal_worker import client
from temporal_worker.contracts.approvals import ApprovalDecided
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.contracts.errors import Refused, Unavailable, UserError

logger = logging.getLogger(__name__)

REVIEW_PERMISSION = "reviews.review_approvals"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


async def _reviewer(request: HttpRequest) -> AbstractUser:
    """The signed-in reviewer (every view here requires the review permission)."""
    user = await request.auser()
    assert isinstance(user, AbstractUser)
    return user


# The detail page's result box; a dashboard row's is "<row id>-result".
DETAIL_RESULT_ID = "decision-result"
DETAIL_PANE_ID = "detail-pane"
MORE_ROWS_RESULT_ID = "more-rows-result"
OUTCOME_LABEL = {"approved": "Approved", "rejected": "Rejected", "withdrawn": "Withdrawn"}


def _first_error(form: DecisionForm | BulkDecisionForm | MoreRowsForm) -> Refused:
    for errors in form.errors.values():
        return Refused(str(errors[0]))
    return Refused("The request is invalid; reload and try again.")


def _result_id(request: HtmxHttpRequest, dom_id: str) -> str:
    """Where a result goes: the row's result cell, or the detail page's box."""
    target = request.htmx.target if request.htmx else None
    from_row = target in (f"{dom_id}-result", f"{dom_id}-claim")
    return f"{dom_id}-result" if from_row else DETAIL_RESULT_ID


def _result(
    request: HtmxHttpRequest,
    *,
    result_id: str,
    error: UserError | None = None,
    decided: ApprovalDecided | None = None,
    message: str = "",
) -> HttpResponse:
    context: dict[str, Any] = {
        "result_id": result_id,
        "error": error,
        "decided": decided,
        "message": message,
    }
    if decided is not None:
        context.update(
            decided_label=OUTCOME_LABEL[decided.outcome],
            decided_at=dt.datetime.fromisoformat(decided.decided_at),
        )
    response = TemplateResponse(request, "reviews/_decision_result.html", context)
    return reswap(retarget(response, f"#{result_id}"), "outerHTML")


async def _viewer_context(request: HtmxHttpRequest) -> dict[str, Any]:
    user = await _reviewer(request)
    return {"viewer_id": user.pk, "viewer_is_staff": user.is_staff}


async def _pending_page(
    request: HtmxHttpRequest, *, after: selectors.PendingKey | None
) -> dict[str, Any]:
    """One page of pending approvals, the oldest first (closest to their deadline), from
    `after` on; with how many more wait and where the next page starts."""
    listing: client.PendingListing | None = None
    error: UserError | None = None
    try:
        listing = await client.approvals_pending_list()
    except UserError as err:  # the page still renders and says why the list is empty
        error = err
    except Exception as err:
        logger.warning("listing pending approvals failed: %s: %s", type(err).__name__, err)
        error = Unavailable("The agent service is unavailable; try again in a moment.")
    items = await selectors.pending_approvals(listing=listing) if listing else []
    if after is not None:
        items = [item for item in items if selectors.pending_key(item) > after]
    # Three forms a row: a page of a thousand was 3.6 MB of HTML and most of a second
    # to render, for a reviewer who decides from the top.
    page = items[: settings.REVIEWS_DASHBOARD_PAGE_ROWS]
    hidden = items[len(page) :]
    return {
        "rows": await selectors.approval_rows(items=page),
        "hidden_count": len(hidden),
        "next_count": min(len(hidden), settings.REVIEWS_DASHBOARD_PAGE_ROWS),
        "next_query": selectors.pending_key_query(selectors.pending_key(page[-1]))
        if hidden
        else "",
        "listing": listing,
        "error": error,
        **await _viewer_context(request),
    }


@require_GET
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    context = await _pending_page(request, after=None)
    return TemplateResponse(request, "reviews/dashboard.html", context)


@require_GET
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def dashboard_more(request: HtmxHttpRequest) -> HttpResponse:
    """The next page of rows, appended to the list, and the note about the rest."""
    form = MoreRowsForm(request.GET)
    if not form.is_valid():
        return _more_rows_error(request, _first_error(form), status=400)
    context = await _pending_page(request, after=form.key())
    if context["error"] is not None:
        return _more_rows_error(request, context["error"], status=context["error"].http_status)
    return TemplateResponse(request, "reviews/_more_rows.html", context)


def _more_rows_error(request: HtmxHttpRequest, error: UserError, *, status: int) -> HttpResponse:
    # Said beside the button, which stays to try again (htmx swaps only a 2xx).
    response = _result(request, result_id=MORE_ROWS_RESULT_ID, error=error)
    response.status_code = 200 if request.htmx else status
    return response


async def _detail_context(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, call_id: str
) -> dict[str, Any]:
    error: UserError | None = None
    try:
        pending = await client.approval_get(conversation_id=str(conversation_id), call_id=call_id)
    except Unavailable as err:
        pending, error = None, err
    except UserError:
        pending = None
    mirror = await selectors.approval_get(conversation_id=str(conversation_id), call_id=call_id)
    if pending is None and mirror is None and not error:
        raise Http404("No approval has this id.")
    row = (await selectors.approval_rows(items=[pending]))[0] if pending else None
    return {
        "row": row,
        "mirror": mirror,
        "mirror_arguments": selectors.pretty_json_value(mirror.arguments) if mirror else "",
        "mirror_edited_arguments": selectors.pretty_json_value(mirror.edited_arguments)
        if mirror and mirror.edited_arguments is not None
        else "",
        "error": error,
        "conversation_id": conversation_id,
        "call_id": call_id,
        "dom_id": selectors.approval_dom_id(conversation_id=str(conversation_id), call_id=call_id),
        "result_id": DETAIL_RESULT_ID,
        "workflow_url": client.workflow_ui_url(conversation_workflow_id(str(conversation_id))),
        "excerpt": await selectors.conversation_excerpt(conversation_id=str(conversation_id)),
        **await _viewer_context(request),
    }


@require_GET
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def approval_detail(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, call_id: str
) -> HttpResponse:
    context = await _detail_context(request, conversation_id, call_id)
    # The dashboard's side pane asks for the page's body only (mail-client style).
    if request.htmx and request.htmx.target == DETAIL_PANE_ID:
        return TemplateResponse(request, "reviews/_detail_body.html", context)
    return TemplateResponse(request, "reviews/detail.html", context)


@require_POST
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def approval_decide(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, call_id: str
) -> HttpResponse:
    dom_id = selectors.approval_dom_id(conversation_id=str(conversation_id), call_id=call_id)
    result_id = _result_id(request, dom_id)
    form = DecisionForm(request.POST)
    error: UserError | None = None
    decided = None
    if not form.is_valid():
        error = _first_error(form)
    else:
        data = form.cleaned_data
        try:
            decided = await actions.approval_decide(
                reviewer=await _reviewer(request),
                conversation_id=str(conversation_id),
                call_id=call_id,
                action=data["action"],
                reason=data["reason"],
                arguments_hash=data["arguments_hash"],
                edited_arguments_json=data["edited_arguments"],
            )
        except UserError as err:
            error = err
    if not request.htmx:
        if decided is not None:
            return redirect("reviews:detail", conversation_id, call_id)
        context = await _detail_context(request, conversation_id, call_id)
        context.update(result_error=error, form=form)
        return TemplateResponse(request, "reviews/detail.html", context, status=422)
    if error or result_id == DETAIL_RESULT_ID:
        return _result(request, result_id=result_id, error=error, decided=decided)
    assert decided is not None
    # From a dashboard row: the row goes, a flash says what happened.
    summaries = await selectors.approval_summaries(keys=[(str(conversation_id), call_id)])
    context = {
        "dom_id": dom_id,
        "decided": decided,
        "label": OUTCOME_LABEL[decided.outcome],
        "summary": summaries.get((str(conversation_id), call_id), ""),
    }
    response = TemplateResponse(request, "reviews/_row_decided.html", context)
    # The row is marked decided (out of band) and reviews.js removes it.
    return reswap(retarget(response, "#flash"), "outerHTML")


@require_POST
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def approval_claim(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, call_id: str
) -> HttpResponse:
    dom_id = selectors.approval_dom_id(conversation_id=str(conversation_id), call_id=call_id)
    result_id = _result_id(request, dom_id)
    reviewer = await _reviewer(request)
    try:
        claimed = await actions.approval_claim(
            reviewer=reviewer, conversation_id=str(conversation_id), call_id=call_id
        )
    except UserError as err:
        if not request.htmx:
            context = await _detail_context(request, conversation_id, call_id)
            context.update(result_error=err)
            return TemplateResponse(request, "reviews/detail.html", context, status=422)
        return _result(request, result_id=result_id, error=err)
    if not request.htmx:
        return redirect("reviews:detail", conversation_id, call_id)
    if result_id == DETAIL_RESULT_ID:
        return _result(request, result_id=result_id, message=f"Claimed by {claimed.claimed_by}.")
    claim = {"claimed_by": claimed.claimed_by, "claimed_by_id": reviewer.pk}
    context = {"row": {"dom_id": dom_id, "pending": claim}, "viewer_id": reviewer.pk}
    # Swapped into the row's claim state (the button's own target).
    return TemplateResponse(request, "reviews/_claim_state.html", context)


@require_POST
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def approvals_bulk_decide(request: HtmxHttpRequest) -> HttpResponse:
    form = BulkDecisionForm(request.POST)
    context: dict[str, Any] = {"results": [], "error": None}
    if not form.is_valid():
        context["error"] = _first_error(form)
    else:
        data = form.cleaned_data
        results = await actions.approvals_bulk_decide(
            reviewer=await _reviewer(request),
            items=data["item"],
            action=data["action"],
            reason=data["reason"],
        )
        summaries = await selectors.approval_summaries(
            keys=[(r.conversation_id, r.call_id) for r in results]
        )
        context.update(
            results=[
                (r, summaries.get((r.conversation_id, r.call_id), r.call_id)) for r in results
            ],
            approved=sum(1 for r in results if r.ok),
            action=data["action"],
        )
    response = TemplateResponse(request, "reviews/_bulk_result.html", context)
    return reswap(retarget(response, "#bulk-result"), "outerHTML") if request.htmx else response


@require_GET
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def approval_history(request: HtmxHttpRequest) -> HttpResponse:
    form = HistoryFilterForm(request.GET or None, tools=await selectors.approval_tool_names())
    entries: list[selectors.HistoryEntry] = []
    if not form.is_bound:
        entries = selectors.history_entries(await selectors.approval_history_list())
    elif form.is_valid():
        entries = selectors.history_entries(
            await selectors.approval_history_list(**form.cleaned_data)
        )
    context = {"form": form, "entries": entries, "limit": selectors.HISTORY_LIMIT}
    if request.htmx and request.htmx.target == "history-results":
        return TemplateResponse(request, "reviews/_history_table.html", context)
    return TemplateResponse(request, "reviews/history.html", context)
