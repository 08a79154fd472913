"""Real parts at the network boundary for approval channels: an SMTP server (aiosmtpd)
that keeps what it receives, a stand-in for Slack's Web API (a local aiohttp server
that records each call and answers as Slack does), and requests signed exactly as Slack
signs them."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from config.processes import free_port
from tests.helpers import eventually

LINK = re.compile(r"https?://[^\s\"'<>]+/reviews/email/[^\s\"'<>/]+/")


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def link(self, label: str) -> str:
        """The Approve or Reject link, as the plain text part shows it."""
        for line in self.text.splitlines():
            if line.startswith(f"{label}:"):
                found = LINK.search(line)
                assert found, line
                return found.group(0)
        raise AssertionError(f"no {label} link in:\n{self.text}")


class Mailbox:
    """An SMTP server on a free port; every mail it accepts is kept, parsed."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.received if address in mail.recipients]

    async def wait_for(self, address: str, count: int = 1) -> list[ReceivedMail]:
        async def arrived() -> list[ReceivedMail]:
            found = self.to(address)
            return found if len(found) >= count else []

        return await eventually(arrived)


@dataclass
class SlackCall:
    method: str
    body: dict[str, Any]
    authorization: str


@dataclass
class SlackStandIn:
    """Slack's Web API as slack-sdk's client sees it: `POST /api/<method>`, a JSON answer
    with `ok`. `fail` makes the next calls of a method fail (an HTTP status or an error)."""

    calls: list[SlackCall] = field(default_factory=list)
    fail: dict[str, list[int | str]] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = dict(await request.post())
        self.calls.append(SlackCall(method, body, request.headers.get("Authorization", "")))
        failures = self.fail.get(method)
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, int):
                return web.Response(status=failure, text="server error")
            return web.json_response({"ok": False, "error": failure})
        if method == "chat.postMessage":
            channel = str(body["channel"])
            # Slack answers with the channel's id: a name resolves, a member id opens a DM.
            resolved = (
                "C0APPROVALS"
                if channel.startswith("#")
                else f"D{channel[1:]}"
                if channel.startswith("U")
                else channel
            )
            return web.json_response(
                {"ok": True, "channel": resolved, "ts": f"17000000{next(self._ts):02d}.000100"}
            )
        if method == "chat.update":
            return web.json_response({"ok": True, "channel": body["channel"], "ts": body["ts"]})
        if method == "views.open":
            return web.json_response({"ok": True, "view": {"id": "V0MODAL"}})
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": "1700000099.000100"})
        return web.json_response({"ok": False, "error": "unknown_method"})

    def of(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(self, method: str, count: int = 1) -> list[SlackCall]:
        async def arrived() -> list[SlackCall]:
            found = self.of(method)
            return found if len(found) >= count else []

        return await eventually(arrived)


def button(call: SlackCall, action_id: str) -> dict[str, Any]:
    """A button of a posted message, as Slack would send it back when clicked."""
    blocks = call.body["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id} button in {blocks}")


def message_text(call: SlackCall) -> str:
    """Everything a reader sees of a posted or updated message."""
    blocks = call.body.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    texts = [str(call.body.get("text", ""))]
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(item["text"] for item in block.get("fields", []))
    return "\n".join(texts)


def slack_headers(body: str, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signature: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


def interaction_body(payload: dict[str, Any]) -> str:
    """An interactivity request's body: the payload as JSON in a form field."""
    return urlencode({"payload": json.dumps(payload)})


def block_action(
    *, slack_user: str, action: dict[str, Any], channel: str = "C0APPROVALS", team: str = "T0TEAM"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "shop"},
        "user": {"id": slack_user, "username": slack_user.lower(), "team_id": team},
        "api_app_id": "A0APP",
        "trigger_id": f"{int(time.time())}.1234.abcdef",
        "container": {"type": "message", "message_ts": "1700000001.000100", "channel_id": channel},
        "channel": {"id": channel, "name": "approvals"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [
            {
                "type": "button",
                "block_id": "decision",
                "action_id": action["action_id"],
                "value": action.get("value", ""),
                "action_ts": str(time.time()),
            }
        ],
    }


def view_submission(
    *, slack_user: str, private_metadata: str, reason: str, team: str = "T0TEAM"
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": "shop"},
        "user": {"id": slack_user, "team_id": team},
        "api_app_id": "A0APP",
        "view": {
            "id": "V0MODAL",
            "callback_id": "reject_reason",
            "private_metadata": private_metadata,
            "state": {
                "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
            },
        },
    }
