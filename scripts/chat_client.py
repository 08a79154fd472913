"""A chat user as far as the server can tell: a cookie-keeping HTTP session that speaks
htmx like the page, plus websockets read all the time, as a browser reads them.

No browser and no Django: it scrapes the HTML the server sends. Used by the production
tests (tests/production) and the load bench (bench/load.py) against real web processes.

    async with ChatClient(web_urls, behind_proxy=True) as alice:
        await alice.login(web_urls[0], "alice", password)
        conversation_id, socket = await alice.first_turn(web_urls[0], web_urls[1], "hi")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

# What a TLS-terminating proxy in front of daphne adds to every request it forwards.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TOTP_SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
FORM_IDS_RE = re.compile(r'name="(conversation_id|message_id)" value="([^"]+)"')
# A streamed reply so far, rendered whole each time (Markdown is not append-only).
STREAM_DELTA = re.compile(
    r'<div id="stream-[0-9a-f-]{36}" class="body stream[^"]*" hx-swap-oob="true">'
)


class ChatError(Exception):
    """The server refused or failed a step; the message says which."""


class CatchUpMissed(ChatError):
    """A freshly opened socket stayed silent although the reply may be done."""


# How long a socket joining after the first POST waits for its first fragment.
CATCH_UP_WAIT_SECONDS = 5.0


@dataclass
class TurnResult:
    deltas: int
    final_html: str
    seconds: float
    frames: int = 0


FINAL_MESSAGE_ID = re.compile(r'<article id="msg-([0-9a-f-]{36})"')


class LiveSocket:
    """A websocket read all the time, as a browser does: frames wait in a queue.

    Reading continuously is what answers daphne's pings (an unread socket is dropped
    after about 50 s, e.g. while a slow POST is pending).
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()
        self.ended = ""
        # Final messages already returned: a catch-up on connect may repeat one.
        self.finals: set[str] = set()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.frames.put_nowait(message.data)
                    continue
                self.ended = (
                    f"{message.type.name} {message.data!r} (close code "
                    f"{self.ws.close_code}, {self.ws.exception()!r})"
                )
                break
        except Exception as err:
            self.ended = repr(err)
        self.frames.put_nowait(None)

    async def next_frame(self, within: float) -> str:
        """The next text frame; TimeoutError after `within` seconds, ChatError once ended."""
        frame = await asyncio.wait_for(self.frames.get(), within)
        if frame is None:
            self.frames.put_nowait(None)  # it stays ended
            raise ChatError(f"websocket ended: {self.ended}")
        return frame

    def discard_pending(self) -> None:
        while not self.frames.empty():
            if self.frames.get_nowait() is None:
                self.frames.put_nowait(None)
                return

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()


class ChatClient:
    """One user: a cookie-keeping HTTP session plus websockets, speaking htmx like the page.

    `behind_proxy=True` adds what a TLS-terminating proxy would (X-Forwarded-Proto:
    https), and treats the loopback origins as secure so Secure cookies are sent.
    """

    def __init__(
        self,
        web_urls: Sequence[str],
        *,
        behind_proxy: bool,
        session_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.behind_proxy = behind_proxy
        # Times a socket that joined late had to reconnect to get a finished reply.
        self.catch_up_misses = 0
        self.scheme = "https" if behind_proxy else "http"
        self.timeout = timeout
        origins = [u for url in web_urls for u in (url, url.replace("http://", "ws://", 1))]
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=origins)
        self.session = aiohttp.ClientSession(
            cookie_jar=jar,
            headers=PROXY_HEADERS if behind_proxy else None,
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        if session_key:
            for url in web_urls:
                jar.update_cookies({"sessionid": session_key}, response_url=URL(url))

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def public(self, web: str, path: str = "/") -> str:
        """The URL the browser believes it is on (https behind the proxy)."""
        return f"{self.scheme}://{web.split('://', 1)[1]}{path}"

    def _csrf(self) -> str:
        for cookie in self.session.cookie_jar:
            if cookie.key == "csrftoken":
                return cookie.value
        raise ChatError("no CSRF cookie")

    async def login(self, web: str, username: str, password: str) -> None:
        async with self.session.get(f"{web}/accounts/login/") as response:
            match = CSRF_INPUT_RE.search(await response.text())
        if match is None:
            raise ChatError(f"no login form at {web} ({response.status})")
        async with self.session.post(
            f"{web}/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1),
            },
            headers={"Origin": self.public(web, "")},
            allow_redirects=False,
        ) as response:
            if response.status != 302:
                raise ChatError(f"login as {username} failed: HTTP {response.status}")

    async def app_enrol(self, web: str) -> str:
        """Set up an authenticator app as a person would: read the key the page shows,
        type in the code it makes now. A reviewer must, when REQUIRE_SECOND_FACTOR is on
        (production mode). Returns the key (base32)."""
        from django_otp.oath import totp

        url = f"{web}/accounts/second-factor/app/"
        async with self.session.get(url, allow_redirects=False) as response:
            page = await response.text()
        secret, csrf = TOTP_SECRET_RE.search(page), CSRF_INPUT_RE.search(page)
        if secret is None or csrf is None:
            raise ChatError(f"no app set-up form at {web} ({response.status})")
        key = secret.group(1).replace(" ", "")
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
        async with self.session.post(
            url,
            data={"code": f"{totp(raw):06d}", "csrfmiddlewaretoken": csrf.group(1)},
            headers={"Origin": self.public(web, "")},
            allow_redirects=False,
        ) as response:
            if response.status != 302:
                raise ChatError(f"the app's code was refused: HTTP {response.status}")
        return key

    async def new_conversation(self, web: str) -> dict[str, str]:
        """Open the home page: the ids its message form carries for a new conversation."""
        async with self.session.get(f"{web}/", allow_redirects=False) as response:
            html = await response.text()
            if response.status != 200:
                raise ChatError(f"GET / answered {response.status}")
        ids = dict(FORM_IDS_RE.findall(html))
        if set(ids) != {"conversation_id", "message_id"}:
            raise ChatError("the home page has no message form")
        return ids

    async def send(
        self,
        web: str,
        *,
        conversation_id: str,
        text: str,
        message_id: str | None = None,
        first: bool = False,
    ) -> None:
        """POST a message as htmx would; raise ChatError unless it was accepted."""
        page = "/" if first else f"/c/{conversation_id}/"
        headers = {
            "X-CSRFToken": self._csrf(),
            "HX-Request": "true",
            "HX-Current-URL": self.public(web, page),
            "Origin": self.public(web, ""),
        }
        data = {
            "conversation_id": conversation_id,
            "message_id": message_id or str(uuid.uuid4()),
            "text": text,
        }
        async with self.session.post(
            f"{web}/c/send/", data=data, headers=headers, allow_redirects=False
        ) as response:
            body = await response.text()
            if response.status != 200 or "HX-Retarget" in response.headers:
                errors = re.findall(r'role="alert"[^>]*>(.*?)</div>', body, re.S)
                reason = re.sub(r"<[^>]+>", " ", " ".join(errors)).strip() or body[:300]
                raise ChatError(f"send refused: HTTP {response.status}: {reason}")
            if first and not response.headers.get("HX-Redirect"):
                raise ChatError("the first message did not open the conversation")

    async def socket(self, web: str, conversation_id: str) -> LiveSocket:
        ws_url = web.replace("http://", "ws://", 1) + f"/ws/c/{conversation_id}/"
        try:
            async with asyncio.timeout(self.timeout):
                ws = await self.session.ws_connect(
                    ws_url, headers={"Origin": self.public(web, "")}, heartbeat=None
                )
        except TimeoutError:
            raise ChatError(f"websocket handshake took over {self.timeout:.0f}s") from None
        return LiveSocket(ws)

    async def wait_final(
        self,
        socket: LiveSocket,
        started: float | None = None,
        *,
        deadline_seconds: float | None = None,
        require_frame: bool = False,
    ) -> TurnResult:
        """Read fragments until the final assistant message and an idle status arrive.

        With `require_frame`, silence for `deadline_seconds` raises `CatchUpMissed`.
        """
        started = time.perf_counter() if started is None else started
        deltas = frames = 0
        limit = self.timeout if deadline_seconds is None else deadline_seconds
        deadline = started + limit
        while True:
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    raise TimeoutError
                data = await socket.next_frame(remaining)
            except TimeoutError:
                if require_frame and frames == 0:
                    raise CatchUpMissed from None
                if deadline_seconds is not None and deadline_seconds < self.timeout:
                    deadline = started + self.timeout
                    deadline_seconds = None
                    continue
                raise ChatError(f"no final message within {self.timeout:.0f}s") from None
            frames += 1
            deltas += len(STREAM_DELTA.findall(data))
            if 'class="msg assistant' in data and "agent-status idle" in data:
                message = FINAL_MESSAGE_ID.search(data)
                if message is not None:
                    if message.group(1) in socket.finals:
                        continue
                    socket.finals.add(message.group(1))
                return TurnResult(
                    deltas=deltas,
                    final_html=data,
                    seconds=time.perf_counter() - started,
                    frames=frames,
                )

    async def first_turn(self, web_http: str, web_ws: str, text: str) -> tuple[str, LiveSocket]:
        """Start a conversation through `web_http`, then watch it on `web_ws` until answered.

        The socket can only open once the first POST has created the conversation, so
        it relies on the consumer's catch-up for a reply that finished in between. That
        catch-up misses a reply whose LLM activity completed but whose workflow task has
        not yet been applied (the workflow still says "thinking", and the final push went
        out before the socket subscribed): the socket then stays silent for good, as a
        browser would sit on "thinking" until a reload. After `CATCH_UP_WAIT_SECONDS` of
        silence we open a second socket (a reload); once it has the answer, a first
        socket still silent counts in `catch_up_misses`, and the second one is kept.

        Returns the conversation id and the open websocket.
        """
        ids = await self.new_conversation(web_http)
        conversation_id = ids["conversation_id"]
        await self.send(
            web_http,
            conversation_id=conversation_id,
            message_id=ids["message_id"],
            text=text,
            first=True,
        )
        socket = await self.socket(web_ws, conversation_id)
        try:
            await self.wait_final(
                socket, deadline_seconds=CATCH_UP_WAIT_SECONDS, require_frame=True
            )
        except CatchUpMissed:
            second = await self.socket(web_ws, conversation_id)
            try:
                await self.wait_final(second)
                try:
                    await self.wait_final(socket, deadline_seconds=2.0, require_frame=True)
                except CatchUpMissed:
                    self.catch_up_misses += 1
            finally:
                await socket.close()
            socket = second
        return conversation_id, socket

    async def turn(
        self, web_http: str, socket: LiveSocket, conversation_id: str, text: str
    ) -> TurnResult:
        """One more message on an open conversation: POST → the final message on `socket`."""
        socket.discard_pending()  # a late duplicate of the last answer is not this one
        started = time.perf_counter()
        await self.send(web_http, conversation_id=conversation_id, text=text)
        return await self.wait_final(socket, started)
