"""Deciding from an email link. A GET shows what the link would do and changes nothing;
the decision is a POST from the reviewer's own session (an anonymous visitor logs in
first and comes back here), through the dashboard's Update and validator."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import AbstractUser
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from reviews import actions, step_up
from reviews.email_links import LinkUse, link_consume, link_open, link_release
from reviews.forms import EmailDecisionForm
from reviews.models import Approval
from reviews.recipients import REVIEW_PERMISSION
from reviews.selectors import pretty_json_value
from reviews.views import OUTCOME_LABEL, HtmxHttpRequest
from temporal_worker.contracts.approvals import CHANNEL_EMAIL, ApprovalDecided
from temporal_worker.contracts.errors import Code, Refused, Unavailable, UserError

TEMPLATE = "reviews/email_decision.html"
ARGUMENTS_CHANGED = (
    "The arguments changed since this email was sent, so its links no longer decide. "
    "Open the request on the dashboard to see what the agent asks now."
)


def _page(
    request: HtmxHttpRequest,
    *,
    use: LinkUse | None = None,
    form: EmailDecisionForm | None = None,
    error: UserError | None = None,
    decided: ApprovalDecided | None = None,
    status: int = 200,
    step_up_url: str = "",
) -> TemplateResponse:
    context: dict[str, Any] = {
        "use": use,
        "form": form,
        "error": error,
        "decided": decided,
        "step_up_url": step_up_url,
        # Again after a failure that may pass (the agent service was unavailable).
        "show_form": form is not None
        and decided is None
        and (error is None or isinstance(error, Unavailable)),
    }
    if use is not None:
        context.update(
            approval=use.approval,
            action=use.action,
            arguments_pretty=pretty_json_value(use.approval.arguments),
        )
    if decided is not None:
        context.update(
            decided_label=OUTCOME_LABEL[decided.outcome],
            decided_at=dt.datetime.fromisoformat(decided.decided_at),
        )
    return TemplateResponse(request, TEMPLATE, context, status=status)


def _finished(approval: Approval) -> UserError | None:
    """Decided in another channel (or at the deadline) already, as the audit says."""
    if approval.status == Approval.Status.PENDING or approval.decided_at is None:
        return None
    return actions.already_decided(
        outcome=approval.status,
        by=approval.decided_by_label,
        at=approval.decided_at,
        channel=approval.decision_channel,
    )


async def _step_up_owed(
    request: HtmxHttpRequest, use: LinkUse, reviewer: AbstractUser
) -> UserError | None:
    """The refusal to show when approving through this link needs a step-up the session
    does not hold (the audit row carries the tool and the arguments the link names)."""
    if use.action != "approve" or not await step_up.policies_ask_step_up():
        return None
    approval = use.approval
    if not await step_up.step_up_needed(tool=approval.tool, arguments=[approval.arguments]):
        return None
    try:
        step_up.step_up_for(
            reviewer=reviewer, channel=CHANNEL_EMAIL, back_to=request.get_full_path()
        )
    except UserError as err:
        return err
    return None


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(REVIEW_PERMISSION, raise_exception=True)
async def email_decision(request: HtmxHttpRequest, token: str) -> HttpResponse:
    reviewer = await request.auser()
    assert isinstance(reviewer, AbstractUser)
    try:
        use = await link_open(token=token, reviewer=reviewer)
    except UserError as err:
        return _page(request, error=err, status=err.http_status)
    finished = _finished(use.approval)
    if finished is not None:
        return _page(request, use=use, error=finished, status=finished.http_status)
    if use.link.arguments_hash != use.approval.arguments_hash:
        changed = Refused(ARGUMENTS_CHANGED, code=Code.STALE_ARGUMENTS)
        return _page(request, use=use, error=changed, status=changed.http_status)
    owed = await _step_up_owed(request, use, reviewer)
    if owed is not None:
        # Asked before the link is used, like the dashboard asks: the reviewer comes back
        # here once it is done.
        url = step_up.step_up_url(request.get_full_path())
        return _page(request, use=use, error=owed, status=owed.http_status, step_up_url=url)
    if request.method == "GET":
        return _page(request, use=use, form=EmailDecisionForm(action=use.action))
    form = EmailDecisionForm(request.POST, action=use.action)
    if not form.is_valid():
        return _page(request, use=use, form=form, status=422)
    if not await link_consume(use):
        raced = Refused("This link was just used in another window.", code="LinkUsed")
        return _page(request, use=use, error=raced, status=raced.http_status)
    try:
        decided = await actions.approval_decide(
            reviewer=reviewer,
            conversation_id=str(use.approval.conversation_id),
            call_id=use.approval.call_id,
            action=use.action,
            reason=form.cleaned_data["reason"],
            arguments_hash=use.link.arguments_hash,
            channel=CHANNEL_EMAIL,
        )
    except UserError as err:
        # Nothing was decided with it: the link stays usable (the workflow refuses a
        # decision that came too late, whatever the link says).
        await link_release(use)
        if err.code == Code.STALE_ARGUMENTS:
            err = Refused(ARGUMENTS_CHANGED, code=Code.STALE_ARGUMENTS)
        return _page(request, use=use, form=form, error=err, status=err.http_status)
    return _page(request, use=use, decided=decided)
