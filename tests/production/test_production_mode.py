"""The product in production mode: separate web and worker processes sharing one
PostgreSQL, one Redis channel layer and one Temporal, configured from the environment."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from scripts.chat_client import ChatClient
from scripts.prod_stack import DEMO_PASSWORD, ROOT, ProductionStack
from temporal_worker.contracts.conversation import conversation_workflow_id

pytestmark = pytest.mark.production

WORKER_STOP_TIMEOUT_SECONDS = 30


def test_check_deploy_has_no_warnings(prod: ProductionStack) -> None:
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=prod.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output, output


# On PostgreSQL the version is bumped by statement triggers (migration 0010): a write to a
# prompt changes it, an MCP server's listing times do not.
CONFIGURATION_PROBE = """
from chatapp import configuration
from chatapp.models import McpServer, Prompt
before = configuration.version()
Prompt.objects.filter(name="agent-system").update(description="Changed in a test")
after_prompt = configuration.version()
McpServer.objects.update(last_error="")
after_listing = configuration.version()
print(before is not None, after_prompt != before, after_listing == after_prompt)
"""


def test_configuration_writes_change_its_version_on_postgresql(prod: ProductionStack) -> None:
    output = prod.manage("shell", "-c", CONFIGURATION_PROBE)
    assert output.strip().splitlines()[-1] == "True True True", output


def _sessions_started(database_url: str) -> int:
    """PostgreSQL's count of connections ever made to the database (this one included)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_web_requests_take_pooled_database_connections(
    prod: ProductionStack, alice: ChatClient
) -> None:
    # Without the pool every request (its own thread under ASGI) started a PostgreSQL
    # backend and ended it: 20 page loads were 20 sessions or more.
    before = _sessions_started(prod.database_url)
    for _ in range(20):
        async with alice.session.get(f"{prod.web_urls[0]}/") as response:
            assert response.status == 200
            assert "Log out" in await response.text()
    await asyncio.sleep(1)  # backends report their counts within a second
    after = _sessions_started(prod.database_url)
    # The two reads here are sessions too: the count must have moved by them at least.
    assert 1 <= after - before <= 6, f"{after - before} new sessions for 20 page loads"


def _client_backends(database_url: str) -> int:
    """Connections to the database open now, this one left out."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_sends_waiting_on_temporal_hold_no_database_connection(
    prod: ProductionStack, user_sessions: list[str]
) -> None:
    # 18 sends stalled on Temporal, one after the other: each kept its request's pooled
    # connection for the whole wait, so the pool grew by one a send (and at 100 a web
    # process had none left for any other request).
    temporal = next(c for c in prod.children if c.name == "temporal")
    web = prod.web_urls[0]
    users = [ChatClient(prod.web_urls, behind_proxy=True, session_key=key) for key in user_sessions]
    sends: list[asyncio.Task[None]] = []
    try:
        for user in users:
            await user.new_conversation(web)  # the CSRF cookie
        before = _client_backends(prod.database_url)
        temporal.proc.send_signal(signal.SIGSTOP)
        try:
            for index in range(18):
                user = users[index % len(users)]
                sends.append(
                    asyncio.create_task(
                        user.send(
                            web,
                            conversation_id=str(uuid.uuid4()),
                            text=f"sent while Temporal stalls {index}",
                            first=True,
                        )
                    )
                )
                await asyncio.sleep(0.15)
            await asyncio.sleep(1.0)
            during = _client_backends(prod.database_url)
            waiting = sum(not send.done() for send in sends)
        finally:
            temporal.proc.send_signal(signal.SIGCONT)
        await asyncio.gather(*sends)  # accepted once Temporal is back: none was lost
    finally:
        for user in users:
            await user.close()
    assert waiting == 18, f"only {waiting} of 18 sends were waiting on Temporal"
    assert during - before <= 6, f"{during - before} more connections while 18 sends waited"


async def test_progress_from_a_worker_reaches_a_socket_on_the_other_web_process(
    prod: ProductionStack, alice: ChatClient
) -> None:
    web_a, web_b = prod.web_urls
    conversation_id, socket = await alice.first_turn(web_a, web_b, "hello from A")
    try:
        # The socket on B is open before the message is sent through A: every delta
        # and the final message travel worker → Redis → web process B.
        result = await alice.turn(web_a, socket, conversation_id, "second message via A")
    finally:
        await socket.close()
    assert result.deltas > 0, "no token deltas reached web process B"
    assert "second message via A" in result.final_html
    assert 'class="msg assistant' in result.final_html


async def test_turns_are_handled_by_both_worker_processes(
    prod: ProductionStack, user_sessions: list[str]
) -> None:
    identities = set(prod.worker_identities().values())
    assert len(identities) == 2
    client = await Client.connect(prod.temporal_address)
    web_a, web_b = prod.web_urls
    users = [ChatClient(prod.web_urls, behind_proxy=True, session_key=key) for key in user_sessions]
    seen: set[str] = set()
    try:
        for batch in range(4):
            turns = await asyncio.gather(
                *(user.first_turn(web_a, web_b, f"batch {batch}") for user in users)
            )
            for conversation_id, socket in turns:
                await socket.close()
                history = await client.get_workflow_handle(
                    conversation_workflow_id(conversation_id)
                ).fetch_history()
                seen |= {
                    event.activity_task_started_event_attributes.identity
                    for event in history.events
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                }
            if identities <= seen:
                break
    finally:
        for user in users:
            await user.close()
    assert identities <= seen, f"activities ran on {seen}, workers are {identities}"


async def test_servestatic_serves_hashed_static_files(prod: ProductionStack) -> None:
    async with ChatClient(prod.web_urls, behind_proxy=True) as anonymous:
        async with anonymous.session.get(f"{prod.web_urls[1]}/accounts/login/") as response:
            assert response.status == 200
            html = await response.text()
        match = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', html)
        assert match, "the page does not link a hashed (manifest) stylesheet"
        async with anonymous.session.get(
            f"{prod.web_urls[1]}{match.group(1)}", headers={"Accept-Encoding": "gzip"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/css")
            assert response.headers.get("Content-Encoding") == "gzip"
            cache = response.headers.get("Cache-Control", "")
            assert "immutable" in cache and "max-age=315360000" in cache, cache
            assert len(await response.read()) > 0


async def test_plain_http_is_redirected_to_https_except_the_health_check(
    prod: ProductionStack,
) -> None:
    async with ChatClient(prod.web_urls, behind_proxy=False) as direct:
        async with direct.session.get(f"{prod.web_urls[0]}/", allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"].startswith("https://")
        async with direct.session.get(f"{prod.web_urls[0]}/healthz") as r:
            assert r.status == 200
    async with ChatClient(prod.web_urls, behind_proxy=True) as proxied:
        async with proxied.session.get(f"{prod.web_urls[0]}/accounts/login/") as r:
            assert r.status == 200
            assert "max-age=31536000" in r.headers.get("Strict-Transport-Security", "")
            cookie = r.headers.get("Set-Cookie", "")
            assert "csrftoken=" in cookie and "Secure" in cookie, cookie


async def test_json_logs_hold_no_message_bodies_or_secrets(
    prod: ProductionStack, alice: ChatClient
) -> None:
    marker = f"private-words-{uuid.uuid4().hex}"
    web_a, web_b = prod.web_urls
    conversation_id, socket = await alice.first_turn(web_a, web_b, f"first {marker}")
    try:
        result = await alice.turn(web_b, socket, conversation_id, f"second {marker}")
    finally:
        await socket.close()
    assert marker in result.final_html  # the scripted model quotes the message back
    await asyncio.sleep(0.5)  # let the processes flush

    records = 0
    for child in [*prod.webs, *prod.workers]:
        text = child.log_path.read_text(errors="replace")
        for line in text.splitlines():
            if not line.strip() or line.startswith("--- "):  # the stack's start banner
                continue
            record = json.loads(line)  # every line a process writes is one JSON object
            assert {"ts", "level", "logger", "msg"} <= record.keys(), line
            records += 1
    assert records >= len(prod.workers), "the workers logged nothing at INFO"

    for log_path in sorted(prod.log_dir.glob("*.log")):
        text = log_path.read_text(errors="replace")
        assert marker not in text, f"{log_path.name} contains a message body"
        for name, secret in prod.secrets.items():
            assert secret not in text, f"{log_path.name} contains the {name}"


async def test_a_worker_stopped_mid_answer_shuts_down_gracefully(
    prod: ProductionStack, alice: ChatClient
) -> None:
    web_a, web_b = prod.web_urls
    conversation_id, socket = await alice.first_turn(web_a, web_b, "warm up")
    client = await Client.connect(prod.temporal_address)
    handle = client.get_workflow_handle(conversation_workflow_id(conversation_id))
    try:
        socket.discard_pending()
        started = time.perf_counter()
        await alice.send(web_a, conversation_id=conversation_id, text="[[slow 40]] take your time")
        running_on = await _activity_worker(handle)
        worker = next(w for w in prod.workers if f"{w.pid}@" in running_on)
        worker.proc.send_signal(signal.SIGTERM)
        result = await alice.wait_final(socket, started)
        code = await asyncio.to_thread(worker.proc.wait, WORKER_STOP_TIMEOUT_SECONDS)
    finally:
        await socket.close()
        if len(prod.workers) < 2:
            await asyncio.to_thread(prod.worker_add)
    assert code == 0, prod.log_text(worker.name)[-2000:]
    assert "take your time" in result.final_html
    assert 'class="msg assistant complete"' in result.final_html  # not cut short
    log = prod.log_text(worker.name)
    assert "finishing in-flight tasks" in log and "worker stopped" in log
    # The answer was finished by the stopping worker, not cut off and retried elsewhere.
    history = await handle.fetch_history()
    last_started = [
        event.activity_task_started_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ][-1]
    assert (last_started.identity, last_started.attempt) == (running_on, 1)


async def _activity_worker(handle: object, timeout: float = 15.0) -> str:
    """The identity of the worker running the workflow's pending LLM activity."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description = await handle.describe()  # type: ignore[attr-defined]
        for pending in description.raw_description.pending_activities:
            if pending.last_worker_identity:
                return str(pending.last_worker_identity)
        await asyncio.sleep(0.05)
    raise AssertionError("no pending activity was picked up by a worker")


async def _eventually(probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f}s")


DETAIL_LINK_RE = re.compile(r'href="(/reviews/[0-9a-f-]{36}/[^/"]+/)"')
ARGUMENTS_HASH_RE = re.compile(r'name="arguments_hash" value="([0-9a-f]+)"')


async def test_a_tool_added_the_documented_way_is_edited_and_approved_on_the_other_web(
    prod: ProductionStack, alice: ChatClient
) -> None:
    """alice asks through web A for a tool that lives in a module listed in
    AGENT_TOOL_MODULES; rita edits its arguments and approves on web B, whose edit form
    validates them with the same registry; the worker runs the edited call."""
    web_a, web_b = prod.web_urls
    ids = await alice.new_conversation(web_a)
    await alice.send(
        web_a,
        conversation_id=ids["conversation_id"],
        message_id=ids["message_id"],
        text='[[call add_loyalty_points {"customer_email": "ada@example.com", "points": 50}]]',
        first=True,
    )
    async with ChatClient(prod.web_urls, behind_proxy=True) as rita:
        await rita.login(web_b, "rita", DEMO_PASSWORD)
        # Production mode asks reviewers for a second factor: rita sets up an app.
        await rita.app_enrol(web_b)

        async def detail_path() -> str | None:
            async with rita.session.get(f"{web_b}/reviews/") as response:
                page = await response.text()
            links = [p for p in DETAIL_LINK_RE.findall(page) if ids["conversation_id"] in p]
            return links[0] if links else None

        path = await _eventually(detail_path)
        async with rita.session.get(f"{web_b}{path}") as response:
            detail = await response.text()
        assert "Add 50 points for ada@example.com" in detail
        arguments_hash = ARGUMENTS_HASH_RE.search(detail)
        assert arguments_hash is not None
        async with rita.session.post(
            f"{web_b}{path}decide/",
            data={
                "action": "approve",
                "arguments_hash": arguments_hash.group(1),
                "edited_arguments": '{"customer_email": "ada@example.com", "points": 20}',
                "reason": "",
            },
            headers={
                "X-CSRFToken": rita._csrf(),
                "HX-Request": "true",
                "HX-Target": "decision-result",
                "Origin": rita.public(web_b, ""),
            },
        ) as response:
            result = await response.text()
        assert response.status == 200
        assert "Approved by rita" in result and "with edited arguments" in result, result

    async def answered() -> str | None:
        async with alice.session.get(f"{web_a}/c/{ids['conversation_id']}/") as response:
            page = await response.text()
        done = "Result of add_loyalty_points" in page and "agent-status idle" in page
        return page if done else None

    page = await _eventually(answered)
    assert "&quot;points_added&quot;: 20" in page
