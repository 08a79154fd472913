"""The page after regenerate and edit-and-resend: earlier versions folded and numbered,
the controls on the latest answer and message only, refusals explained."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import AbstractBaseUser

from chatapp import services
from chatapp.models import Conversation, Message
from chatapp.versions import Earlier, Latest, transcript_items
from temporal_worker import client as temporal_client
from tests.factories import auser_create
from tests.helpers import body, eventually, html_text, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


def _m(seq: int, role: str, kind: str = "") -> Message:
    return Message(id=uuid.uuid4(), seq=seq, role=role, error_kind=kind, content=f"{role}{seq}")


def _shape(items: list[Message | Earlier | Latest]) -> list[object]:
    return [
        (f"earlier {i.number}/{i.total}", [m.content for m in i.messages])
        if isinstance(i, Earlier)
        else f"latest {i.number}"
        if isinstance(i, Latest)
        else i.content
        for i in items
    ]


def test_regenerated_answers_fold_into_numbered_versions() -> None:
    messages = [
        _m(1, "user"),
        _m(2, "assistant"),
        _m(3, "tool"),
        _m(4, "assistant"),
        _m(5, "notice", "regenerated"),
        _m(6, "assistant"),
        _m(7, "notice", "regenerated"),
        _m(8, "assistant"),
    ]
    assert _shape(transcript_items(messages)) == [
        "user1",
        ("earlier 1/3", ["assistant2", "tool3", "assistant4"]),
        ("earlier 2/3", ["assistant6"]),
        "latest 3",
        "assistant8",
    ]


def test_an_edit_folds_the_message_with_all_its_answers() -> None:
    messages = [
        _m(1, "user"),
        _m(2, "assistant"),
        _m(3, "user"),
        _m(4, "assistant"),
        _m(5, "notice", "regenerated"),
        _m(6, "assistant"),
        _m(7, "notice", "edited"),
        _m(8, "user"),
        _m(9, "assistant"),
    ]
    assert _shape(transcript_items(messages)) == [
        "user1",
        "assistant2",
        ("earlier 1/2", ["user3", "assistant4", "assistant6"]),
        "latest 2",
        "user8",
        "assistant9",
    ]


async def _idle(cid: uuid.UUID, replies: int) -> None:
    async def done() -> bool:
        count = await Message.objects.filter(conversation_id=cid, role="assistant").acount()
        live = await temporal_client.conversation_live_state(conversation_id=str(cid))
        return count >= replies and live is not None and live.status == "idle"

    await eventually(done, timeout=30)


def _form_values(page: str, action: str) -> dict[str, str]:
    form = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', page, re.S)
    assert form, f"no form posting to {action}"
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0)))


async def _started(user: AbstractBaseUser) -> uuid.UUID:
    cid = uuid.uuid4()
    await services.message_send(user=user, conversation_id=cid, message_id=uuid.uuid4(), text="hi")
    await _idle(cid, 1)
    return cid


async def test_regenerate_from_the_page_shows_one_of_two(worker: object) -> None:
    user = await auser_create()
    cid = await _started(user)
    client = await logged_in(user)
    page = body(await client.get(f"/c/{cid}/"))
    values = _form_values(page, f"/c/{cid}/regenerate/")

    response = await client.post(f"/c/{cid}/regenerate/", values, headers={"HX-Request": "true"})
    assert response.headers.get("HX-Redirect") == f"/c/{cid}/"
    await _idle(cid, 2)

    page = body(await client.get(f"/c/{cid}/"))
    assert "Earlier answer · 1 of 2" in html_text(page)
    assert "Latest · 2 of 2" in html_text(page)
    latest = await Message.objects.filter(conversation_id=cid, role="assistant").alast()
    assert latest is not None
    # The controls move to the new answer.
    assert _form_values(page, f"/c/{cid}/regenerate/")["reply_id"] == str(latest.id)


async def test_a_stale_regenerate_is_explained_in_the_flash(worker: object) -> None:
    user = await auser_create()
    cid = await _started(user)
    client = await logged_in(user)
    page = body(await client.get(f"/c/{cid}/"))
    values = _form_values(page, f"/c/{cid}/regenerate/")
    await services.message_send(
        user=user, conversation_id=cid, message_id=uuid.uuid4(), text="one more"
    )
    await _idle(cid, 2)

    response = await client.post(f"/c/{cid}/regenerate/", values, headers={"HX-Request": "true"})

    assert "Only the latest answer can be regenerated; reload the page." in html_text(
        body(response)
    )


async def test_edit_from_the_page_resends_the_message(worker: object) -> None:
    user = await auser_create()
    cid = await _started(user)
    client = await logged_in(user)
    page = body(await client.get(f"/c/{cid}/"))
    values = _form_values(page, f"/c/{cid}/edit/")

    empty = await client.post(
        f"/c/{cid}/edit/", {**values, "text": "  "}, headers={"HX-Request": "true"}
    )
    assert "A message cannot be empty." in html_text(body(empty))
    response = await client.post(
        f"/c/{cid}/edit/", {**values, "text": "hi again"}, headers={"HX-Request": "true"}
    )
    assert response.headers.get("HX-Redirect") == f"/c/{cid}/"
    await _idle(cid, 2)

    page = body(await client.get(f"/c/{cid}/"))
    assert "Earlier message · 1 of 2" in html_text(page)
    assert await Message.objects.filter(id=values["message_id"], content="hi again").aexists()


async def test_someone_elses_conversation_cannot_be_changed(worker: object) -> None:
    owner, intruder = await auser_create(), await auser_create()
    conversation = await Conversation.objects.acreate(owner=owner, title="x")
    client = await logged_in(intruder)
    values = {"request_id": str(uuid.uuid4()), "reply_id": str(uuid.uuid4())}

    response = await client.post(f"/c/{conversation.id}/regenerate/", values)

    assert response.status_code == 404
