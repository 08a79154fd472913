"""Helpers shared by the security tests: actors, sockets, real approvals, and a check
that rendered HTML carries no executable markup."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import AsyncClient
from temporalio.client import Client as TemporalClient

from config.asgi import application
from temporal_worker.contracts.approvals import PendingApproval
from temporal_worker.contracts.conversation import conversation_workflow_id
from temporal_worker.workflows import ConversationWorkflow
from tests.factories import auser_create
from tests.helpers import body, html_element, html_text, input_values

GOOD_ORIGIN = b"http://127.0.0.1:8000"
SEND_URL = "/c/send/"


# --- actors ---------------------------------------------------------------------------


async def admin_create(username: str | None = None) -> AbstractBaseUser:
    return await auser_create(username=username, is_staff=True, is_superuser=True)


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


async def still_pending(temporal: TemporalClient, approval: PendingApproval) -> bool:
    handle = temporal.get_workflow_handle(conversation_workflow_id(approval.conversation_id))
    result = await handle.query(ConversationWorkflow.pending_approvals)
    return approval.call_id in [p.call_id for p in result.items]


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
