"""Chat pages and htmx endpoints. Thin: validate, call one service or selector, render.

A refusal or failure (`UserError`) that has no better place is rendered by
config.errors: in the flash region for htmx, as an error page otherwise.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget
from django_htmx.middleware import HtmxDetails

from chatapp import deletion, search, selectors, services, versions
from chatapp.forms import EditForm, MessageForm, RegenerateForm, RenameForm, SearchForm
from chatapp.models import Agent, Message
from chatapp.starters import STARTERS
from temporal_worker import client
from temporal_worker.contracts.errors import Code, Refused, Unavailable, UserError


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


async def _user(request: HttpRequest) -> AbstractBaseUser:
    """The signed-in account (every view here is login_required)."""
    user = await request.auser()
    assert isinstance(user, AbstractBaseUser)
    return user


def _new_message_form(conversation_id: uuid.UUID, *, text: str = "") -> MessageForm:
    return MessageForm(
        initial={"conversation_id": conversation_id, "message_id": uuid.uuid4(), "text": text}
    )


async def _page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = await _user(request)
    return {
        "conversations": await selectors.conversation_list_for_owner(user=user),
        **extra,
    }


@require_GET
@login_required
async def home(request: HtmxHttpRequest) -> HttpResponse:
    conversation_id = uuid.uuid4()
    context = await _page_context(
        request,
        conversation=None,
        form=_new_message_form(conversation_id),
        starters=STARTERS,
        **await _agent_picker(),
    )
    return TemplateResponse(request, "chat/conversation.html", context)


async def _agent_picker(picked: str = "") -> dict[str, Any]:
    """The agents a new conversation may start with, and the one checked."""
    agents = await selectors.agents_offered()
    default: Agent | None = next((a for a in agents if a.is_default), None)
    if not picked or all(a.slug != picked for a in agents):
        picked = default.slug if default else (agents[0].slug if agents else "")
    return {"agents": agents, "picked_agent": picked}


@require_GET
@login_required
async def conversation_detail(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = await selectors.conversation_get_for_owner(
        user=await _user(request), conversation_id=conversation_id
    )
    live = None
    if not conversation.is_archived:
        live = await client.conversation_live_state(conversation_id=str(conversation.id))
    messages = await selectors.message_list(conversation=conversation)
    approvals = await selectors.approval_list_for_conversation(conversation=conversation)
    context = await _page_context(
        request,
        conversation=conversation,
        agent=await selectors.agent_current(conversation=conversation),
        messages=messages,
        **_version_controls(
            conversation.is_archived, [*messages, *_unrecorded_dividers(messages, live)], live
        ),
        unrecorded=_unrecorded_messages(conversation.id, messages, live),
        live=live,
        pending_approvals=[a for a in approvals if a.status == "pending"],
        approvals_by_call={a.call_id: a for a in approvals},
        form=_new_message_form(conversation.id),
    )
    return TemplateResponse(request, "chat/conversation.html", context)


def _version_controls(
    archived: bool, messages: list[Message], live: client.LiveState | None
) -> dict[str, Any]:
    """The transcript with earlier versions folded, and which message may be edited and
    which reply regenerated: the last ones (while a turn runs or a reviewer decides, the
    workflow refuses and says why)."""
    items = versions.transcript_items(messages)
    controls: dict[str, Any] = {"transcript_items": items}
    if archived or live is None:
        return controls
    shown = [m for m in items if isinstance(m, Message)]
    last_user = next((m for m in reversed(shown) if m.role == Message.Role.USER), None)
    if shown and shown[-1].role == Message.Role.ASSISTANT:
        controls["last_reply_id"] = shown[-1].id
        controls["regenerate_request_id"] = uuid.uuid4()
    if last_user is not None:
        controls["last_user_id"] = last_user.id
        controls["edit_message_id"] = uuid.uuid4()
    return controls


def _unrecorded_dividers(messages: list[Message], live: client.LiveState | None) -> list[Message]:
    """A regenerate or an edit the workflow accepted before its step recorded the
    divider: the page folds the earlier version already."""
    recorded = {str(m.id) for m in messages}
    return [
        Message(
            id=uuid.UUID(pending.id),
            seq=pending.seq,
            role=Message.Role.NOTICE,
            error_kind=pending.notice_kind,
        )
        for pending in (live.unrecorded if live is not None else [])
        if pending.notice_kind and pending.id not in recorded
    ]


def _unrecorded_messages(
    conversation_id: uuid.UUID, messages: list[Message], live: client.LiveState | None
) -> list[Message]:
    """Messages the workflow accepted that the database does not hold yet (queued behind
    the turn in progress, or about to be recorded by the step that took them)."""
    if live is None:
        return []
    recorded = {str(m.id) for m in messages}
    shown = []
    for pending in live.unrecorded:
        if pending.id in recorded or pending.notice_kind:
            continue
        message = Message(
            id=uuid.UUID(pending.id),
            conversation_id=conversation_id,
            seq=pending.seq,
            role=Message.Role.USER,
            content=pending.text,
        )
        message.queued = pending.queued
        shown.append(message)
    return shown


@require_POST
@login_required
async def message_send(request: HtmxHttpRequest) -> HttpResponse:
    form = MessageForm(request.POST)
    if not form.is_valid():
        return await _composer_with_errors(request, form)
    data = form.cleaned_data
    try:
        sent = await services.message_send(
            user=await _user(request),
            conversation_id=data["conversation_id"],
            message_id=data["message_id"],
            text=data["text"],
            agent=data["agent"],
        )
    except UserError as err:
        if err.http_status == 404:
            raise
        # The text stays in the box, under the same message id: sending again is safe.
        return await _composer_with_errors(request, form, error=err)

    url = reverse("chat:conversation", args=[sent.conversation.id])
    if not request.htmx:
        return redirect(url)
    if request.htmx.current_url_abs_path != url:
        # The first message of a new conversation: open its page, which streams the reply.
        return HttpResponseClientRedirect(url)
    # Answered after the reply in progress: marked as queued until its turn starts.
    sent.message.queued = sent.accepted.queue_position > 0
    context = {
        "message": sent.message,
        "duplicate": sent.accepted.duplicate,
        "accepted": sent.accepted,
        "form": _new_message_form(sent.conversation.id),
        "conversation": sent.conversation,
        # The newest message may be edited once its answer is in (the workflow refuses
        # before, and refuses an older one after, each with a reason).
        "last_user_id": sent.message.id,
        "edit_message_id": uuid.uuid4(),
    }
    return TemplateResponse(request, "chat/_sent.html", context)


async def _composer_with_errors(
    request: HtmxHttpRequest, form: MessageForm, *, error: UserError | None = None
) -> HttpResponse:
    status = error.http_status if error is not None else 422
    # Temporal is down (not just slow): the site-wide banner shows at once.
    service_down = isinstance(error, Unavailable) and not error.outcome_unknown
    context: dict[str, Any] = {"form": form, "error": error, "service_down": service_down}
    if not await selectors.conversation_exists(conversation_id=form.data.get("conversation_id")):
        # Still a new conversation: the picker stays, with the agent that was picked.
        context.update(await _agent_picker(str(form.data.get("agent") or "")))
    response = TemplateResponse(request, "chat/_composer.html", context, status=status)
    if request.htmx:
        # htmx ignores 4xx bodies unless told otherwise; show the errors in place.
        response.status_code = 200
        response = reswap(retarget(response, "#composer"), "outerHTML")
    return response


@require_POST
@login_required
async def answer_stop(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    await services.answer_stop(user=await _user(request), conversation_id=conversation_id)
    return _flash(request, "Stopping…")


@require_POST
@login_required
async def turn_retry(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, notice_id: uuid.UUID
) -> HttpResponse:
    await services.turn_retry(
        user=await _user(request), conversation_id=conversation_id, notice_id=notice_id
    )
    return _flash(request, "Trying again…")


@require_POST
@login_required
async def approval_withdraw(
    request: HtmxHttpRequest, conversation_id: uuid.UUID, call_id: str
) -> HttpResponse:
    await services.approval_withdraw(
        user=await _user(request), conversation_id=conversation_id, call_id=call_id
    )
    return _flash(request, "Withdrawn: the agent will not do it.")


@require_POST
@login_required
async def conversation_rename(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    form = RenameForm(request.POST)
    if not form.is_valid():
        raise Refused("A title needs 1 to 120 characters.")
    conversation = await services.conversation_rename(
        user=await _user(request),
        conversation_id=conversation_id,
        title=form.cleaned_data["title"],
    )
    if not request.htmx:
        return redirect("chat:conversation", conversation.id)
    return TemplateResponse(
        request,
        "chat/_rename_done.html",
        await _page_context(request, conversation=conversation),
    )


@require_POST
@login_required
async def conversation_archive(
    request: HtmxHttpRequest, conversation_id: uuid.UUID
) -> HttpResponse:
    await services.conversation_archive(user=await _user(request), conversation_id=conversation_id)
    if request.htmx:
        return HttpResponseClientRedirect(reverse("chat:home"))
    return redirect("chat:home")


@require_POST
@login_required
async def answer_regenerate(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    # Someone else's conversation is "not found" whatever the form holds.
    await selectors.conversation_get_for_owner(
        user=await _user(request), conversation_id=conversation_id
    )
    form = RegenerateForm(request.POST)
    if not form.is_valid():
        raise Refused("This page is out of date; reload it and try again.", code=Code.INVALID)
    await services.answer_regenerate(
        user=await _user(request),
        conversation_id=conversation_id,
        request_id=form.cleaned_data["request_id"],
        reply_id=form.cleaned_data["reply_id"],
    )
    return _to_conversation(request, conversation_id)


@require_POST
@login_required
async def message_edit(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    # Someone else's conversation is "not found" whatever the form holds.
    await selectors.conversation_get_for_owner(
        user=await _user(request), conversation_id=conversation_id
    )
    form = EditForm(request.POST)
    if not form.is_valid():
        problems = [str(e) for errors in form.errors.values() for e in errors]
        raise Refused(" ".join(problems), code=Code.INVALID)
    await services.message_edit(
        user=await _user(request),
        conversation_id=conversation_id,
        message_id=form.cleaned_data["message_id"],
        replaces_id=form.cleaned_data["replaces_id"],
        text=form.cleaned_data["text"],
    )
    return _to_conversation(request, conversation_id)


def _to_conversation(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """The page again: earlier versions fold, and the new answer streams in."""
    url = reverse("chat:conversation", args=[conversation_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
@login_required
async def conversation_search(request: HtmxHttpRequest) -> HttpResponse:
    """Titles and message text matching the query, each linking to the message."""
    form = SearchForm(request.GET or None)
    hits = (
        await search.conversation_search(user=await _user(request), query=form.cleaned_data["q"])
        if form.is_valid()
        else []
    )
    context = await _page_context(request, form=form, hits=hits, searched=form.is_valid())
    return TemplateResponse(request, "chat/search.html", context)


@require_GET
@login_required
async def archive_list(request: HtmxHttpRequest) -> HttpResponse:
    """The archived conversations, newest first, each readable and unarchivable."""
    user = await _user(request)
    context = await _page_context(
        request, archived=await selectors.conversation_list_for_owner(user=user, archived=True)
    )
    return TemplateResponse(request, "chat/archive.html", context)


@require_POST
@login_required
async def conversation_unarchive(
    request: HtmxHttpRequest, conversation_id: uuid.UUID
) -> HttpResponse:
    conversation = await services.conversation_unarchive(
        user=await _user(request), conversation_id=conversation_id
    )
    url = reverse("chat:conversation", args=[conversation.id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
@login_required
async def conversation_delete(request: HtmxHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Delete for good (the page's confirmation posted `confirm`): ends the workflow,
    deletes its Temporal history and the rows (chatapp.deletion)."""
    await deletion.conversation_delete(
        user=await _user(request),
        conversation_id=conversation_id,
        confirmed=request.POST.get("confirm") == "delete",
    )
    if request.htmx:
        return HttpResponseClientRedirect(reverse("chat:home"))
    return redirect("chat:home")


def _flash(request: HtmxHttpRequest, text: str) -> HttpResponse:
    """What happened, in the page's flash region (an info message, not an error)."""
    response = TemplateResponse(request, "errors/_flash.html", {"text": text, "level": "info"})
    return reswap(retarget(response, "#flash"), "outerHTML") if request.htmx else response
