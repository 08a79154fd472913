"""Helpers shared by the security tests: actors, sockets, real approvals, and a check
that rendered HTML carries no executable markup."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from decimal import Decimal
from html.parser import HTMLParser

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.http import HttpResponse
from django.test import AsyncClient, Client
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError

from chatapp import services
from chatapp.asgi import application
from reviews.models import Approval
from reviews.selectors import approval_dom_id
from shop.models import Customer, Order
from temporal_worker.shared import SA_APPROVAL_PENDING, PendingApproval, conversation_workflow_id
from temporal_worker.workflows import ConversationWorkflow
from tests.factories import auser_create
from tests.helpers import eventually, html_element, html_text, input_values

GOOD_ORIGIN = b"http://127.0.0.1:8000"
SEND_URL = "/c/send/"
_order_numbers = itertools.count(97001)


# --- actors ---------------------------------------------------------------------------


async def reviewer_create(username: str | None = None, **extra: object) -> AbstractBaseUser:
    user = await auser_create(username=username, **extra)
    permission = await Permission.objects.aget(codename="review_approvals")
    await user.user_permissions.aadd(permission)
    return user


async def admin_create(username: str | None = None) -> AbstractBaseUser:
    return await auser_create(username=username, is_staff=True, is_superuser=True)


async def logged_in(user: AbstractBaseUser | None, **client_options: object) -> AsyncClient:
    client = AsyncClient(**client_options)
    if user is not None:
        await client.aforce_login(user)
    return client


async def session_cookie(user: AbstractBaseUser) -> str:
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client.cookies["sessionid"].value


def body(response: HttpResponse) -> str:
    return response.content.decode()


def htmx(current_path: str = "/", target: str | None = None) -> dict[str, str]:
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{current_path}"}
    if target is not None:
        headers["HX-Target"] = target
    return headers


def websocket(
    path: str, *, cookie: str | None, origin: bytes | None = GOOD_ORIGIN
) -> WebsocketCommunicator:
    """A socket through the real ASGI stack (origin validator, session auth, routing)."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def socket_accepted(
    path: str, *, cookie: str | None, origin: bytes | None = GOOD_ORIGIN
) -> bool:
    socket = websocket(path, cookie=cookie, origin=origin)
    connected, _ = await socket.connect()
    if connected:
        await socket.disconnect()
    return connected


# --- chatting ------------------------------------------------------------------------


def composer_ids(page: str) -> tuple[str, str]:
    composer = html_element(page, "composer")
    assert composer is not None, "no composer on the page"
    values = input_values(composer)
    return values["conversation_id"], values["message_id"]


def composer_error(fragment: str) -> str:
    return html_text(html_element(fragment, "composer-error") or "").strip()


async def send(
    client: AsyncClient,
    *,
    conversation_id: str | uuid.UUID,
    message_id: str | uuid.UUID,
    text: str,
    current_path: str | None = None,
) -> HttpResponse:
    """A message sent the way the composer sends it (htmx, from the conversation's page)."""
    path = current_path if current_path is not None else f"/c/{conversation_id}/"
    return await client.post(
        SEND_URL,
        {"conversation_id": conversation_id, "message_id": message_id, "text": text},
        headers=htmx(path),
    )


async def conversation_start(client: AsyncClient, text: str) -> str:
    """The first message from the home page's composer; returns the conversation id."""
    conversation_id, message_id = composer_ids(body(await client.get("/")))
    response = await send(
        client, conversation_id=conversation_id, message_id=message_id, text=text, current_path="/"
    )
    assert response.status_code == 200, body(response)
    assert response.headers.get("HX-Redirect") == f"/c/{conversation_id}/", composer_error(
        body(response)
    )
    return conversation_id


# --- real approvals ---------------------------------------------------------------------


async def pending_approvals_terminate(temporal: TemporalClient) -> None:
    """Workflows left waiting by earlier tests have no worker any more, and the dashboard's
    listing would wait on their queries: end them."""
    query = f'{SA_APPROVAL_PENDING} = true AND ExecutionStatus = "Running"'
    async for execution in temporal.list_workflows(query):
        with contextlib.suppress(RPCError):  # already gone is fine
            await temporal.get_workflow_handle(execution.id).terminate("test cleanup")


async def order_create(total: str = "500.00") -> Order:
    number = next(_order_numbers)
    customer = await Customer.objects.acreate(
        name=f"Customer {number}", email=f"customer{number}@test.example"
    )
    return await Order.objects.acreate(
        number=number,
        customer=customer,
        status=Order.Status.DELIVERED,
        total=Decimal(total),
        items=[{"sku": "T-1", "name": "Test item", "qty": 1, "price": total}],
    )


async def refund_requested(
    temporal: TemporalClient, user: AbstractBaseUser, *, amount: str = "120", extra: str = ""
) -> PendingApproval:
    """`user` asks the agent for a refund; returns the approval once the workflow waits
    on it and the audit mirror has its row."""
    order = await order_create()
    conversation_id = uuid.uuid4()
    await services.message_send(
        user=user,
        conversation_id=conversation_id,
        message_id=uuid.uuid4(),
        text=f"Please refund {amount} on order {order.number}{extra}",
    )
    handle = temporal.get_workflow_handle(conversation_workflow_id(str(conversation_id)))

    async def pending() -> PendingApproval | None:
        result = await handle.query(ConversationWorkflow.pending_approvals)
        return result.items[0] if result.items else None

    approval = await eventually(pending)
    await eventually(
        lambda: Approval.objects.filter(workflow_id=handle.id, call_id=approval.call_id).aexists()
    )
    return approval


async def still_pending(temporal: TemporalClient, approval: PendingApproval) -> bool:
    handle = temporal.get_workflow_handle(conversation_workflow_id(approval.conversation_id))
    result = await handle.query(ConversationWorkflow.pending_approvals)
    return approval.call_id in [p.call_id for p in result.items]


def row_id(approval: PendingApproval) -> str:
    return approval_dom_id(conversation_id=approval.conversation_id, call_id=approval.call_id)


# --- executable markup ------------------------------------------------------------------

_URL_ATTRIBUTES = frozenset(
    "href src action formaction xlink:href data poster background srcset ping".split()
)
_JS_TYPES = frozenset(
    {"", "text/javascript", "application/javascript", "module", "text/ecmascript"}
)
# Characters browsers drop from a URL before reading its scheme.
_URL_IGNORED = "".join(chr(c) for c in range(0x21)) + "\x7f"


class _ExecutableMarkup(HTMLParser):
    """Collects what a browser could run: inline scripts, scripts from another origin,
    event handler attributes (including htmx's hx-on), and script-bearing URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.findings.append(f"inline script: {data.strip()[:80]!r}")

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = {name: value or "" for name, value in attrs}
        if tag == "script" and fields.get("type", "").strip().lower() in _JS_TYPES:
            src = fields.get("src", "")
            if not src:
                self._in_inline_script = True
            elif not src.startswith("/") or src.startswith("//"):
                self.findings.append(f"script from another origin: {src!r}")
        for name, value in fields.items():
            if name.startswith("on") or name.startswith("hx-on"):
                self.findings.append(f"<{tag} {name}={value!r}>")
            if name in _URL_ATTRIBUTES:
                scheme = "".join(ch for ch in value if ch not in _URL_IGNORED).lower()
                if scheme.startswith(("javascript:", "vbscript:", "data:text/html")):
                    self.findings.append(f"<{tag} {name}={value!r}>")
            if name in ("hx-vals", "hx-headers", "hx-vars") and value.strip().startswith(
                ("js:", "javascript:")
            ):
                self.findings.append(f"<{tag} {name}={value!r}>")
        if "srcdoc" in fields or tag == "base" or (tag == "meta" and "http-equiv" in fields):
            self.findings.append(f"<{tag} {fields!r}>")


def executable_markup(html: str) -> list[str]:
    """Everything in `html` that would run script in a browser; [] when it is inert."""
    parser = _ExecutableMarkup()
    parser.feed(html)
    parser.close()
    return parser.findings
