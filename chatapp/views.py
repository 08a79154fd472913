"""Chat pages and htmx endpoints. Thin: validate, call one service or selector, render."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from chatapp import selectors, services, temporal_client
from chatapp.forms import MessageForm, RenameForm
from chatapp.models import Conversation
from chatapp.selectors import ConversationNotFound


def _new_message_form(conversation_id: uuid.UUID, *, text: str = "") -> MessageForm:
    return MessageForm(
        initial={"conversation_id": conversation_id, "message_id": uuid.uuid4(), "text": text}
    )


async def _conversation_or_404(request: HttpRequest, conversation_id: uuid.UUID) -> Conversation:
    try:
        return await selectors.conversation_get_for_owner(
            user=await request.auser(), conversation_id=conversation_id
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err


async def _page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = await request.auser()
    return {
        "conversations": await selectors.conversation_list_for_owner(user=user),
        **extra,
    }


@require_GET
@login_required
async def home(request: HttpRequest) -> HttpResponse:
    conversation_id = uuid.uuid4()
    context = await _page_context(
        request, conversation=None, form=_new_message_form(conversation_id)
    )
    return TemplateResponse(request, "chat/conversation.html", context)


@require_GET
@login_required
async def conversation_detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = await _conversation_or_404(request, conversation_id)
    live = None
    if not conversation.is_archived:
        live = await temporal_client.conversation_live_state(conversation_id=str(conversation.id))
    approvals = await selectors.approval_list_for_conversation(conversation=conversation)
    context = await _page_context(
        request,
        conversation=conversation,
        messages=await selectors.message_list(conversation=conversation),
        live=live,
        pending_approvals=[a for a in approvals if a.status == "pending"],
        approvals_by_call={a.call_id: a for a in approvals},
        form=_new_message_form(conversation.id),
    )
    return TemplateResponse(request, "chat/conversation.html", context)


@require_POST
@login_required
async def message_send(request: HttpRequest) -> HttpResponse:
    form = MessageForm(request.POST)
    if not form.is_valid():
        return _composer_with_errors(request, form)
    data = form.cleaned_data
    try:
        sent = await services.message_send(
            user=await request.auser(),
            conversation_id=data["conversation_id"],
            message_id=data["message_id"],
            text=data["text"],
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    except (temporal_client.ChatRejected, temporal_client.TemporalUnavailable) as err:
        form.add_error(None, str(err))
        return _composer_with_errors(request, form)

    url = reverse("chat:conversation", args=[sent.conversation.id])
    if not request.htmx:
        return redirect(url)
    if request.htmx.current_url_abs_path != url:
        # The first message of a new conversation: open its page, which streams the reply.
        return HttpResponseClientRedirect(url)
    context = {
        "message": sent.message,
        "duplicate": sent.accepted.duplicate,
        "accepted": sent.accepted,
        "form": _new_message_form(sent.conversation.id),
        "conversation": sent.conversation,
    }
    return TemplateResponse(request, "chat/_sent.html", context)


def _composer_with_errors(request: HttpRequest, form: MessageForm) -> HttpResponse:
    status = 422
    response = TemplateResponse(request, "chat/_composer.html", {"form": form}, status=status)
    if request.htmx:
        # htmx ignores 4xx bodies unless told otherwise; show the errors in place.
        response.status_code = 200
        response = reswap(retarget(response, "#composer"), "outerHTML")
    return response


@require_POST
@login_required
async def answer_stop(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    try:
        await services.answer_stop(user=await request.auser(), conversation_id=conversation_id)
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    except (temporal_client.ChatRejected, temporal_client.TemporalUnavailable) as err:
        return _flash(request, str(err))
    return _flash(request, "Stopping…", level="info")


@require_POST
@login_required
async def turn_retry(
    request: HttpRequest, conversation_id: uuid.UUID, notice_id: uuid.UUID
) -> HttpResponse:
    try:
        await services.turn_retry(
            user=await request.auser(), conversation_id=conversation_id, notice_id=notice_id
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    except (temporal_client.ChatRejected, temporal_client.TemporalUnavailable) as err:
        return _flash(request, str(err))
    return _flash(request, "Trying again…", level="info")


@require_POST
@login_required
async def approval_withdraw(
    request: HttpRequest, conversation_id: uuid.UUID, call_id: str
) -> HttpResponse:
    try:
        await services.approval_withdraw(
            user=await request.auser(), conversation_id=conversation_id, call_id=call_id
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    except (temporal_client.ChatRejected, temporal_client.TemporalUnavailable) as err:
        return _flash(request, str(err))
    return _flash(request, "Withdrawn: the agent will not do it.", level="info")


@require_POST
@login_required
async def conversation_rename(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    form = RenameForm(request.POST)
    if not form.is_valid():
        return _flash(request, "A title needs 1 to 120 characters.")
    try:
        conversation = await services.conversation_rename(
            user=await request.auser(),
            conversation_id=conversation_id,
            title=form.cleaned_data["title"],
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    if not request.htmx:
        return redirect("chat:conversation", conversation.id)
    return TemplateResponse(
        request,
        "chat/_rename_done.html",
        await _page_context(request, conversation=conversation),
    )


@require_POST
@login_required
async def conversation_archive(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    try:
        await services.conversation_archive(
            user=await request.auser(), conversation_id=conversation_id
        )
    except ConversationNotFound as err:
        raise Http404("No such conversation.") from err
    except temporal_client.TemporalUnavailable as err:
        return _flash(request, str(err))
    if request.htmx:
        return HttpResponseClientRedirect(reverse("chat:home"))
    return redirect("chat:home")


def _flash(request: HttpRequest, text: str, *, level: str = "error") -> HttpResponse:
    response = TemplateResponse(request, "chat/_flash.html", {"text": text, "level": level})
    return reswap(retarget(response, "#flash"), "outerHTML") if request.htmx else response


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
