"""A production-shaped stack on one machine, every part its own process.

PostgreSQL (initdb into a temporary folder, as a non-root user), Redis, a Temporal dev
server, the scripted model, N workers (`python -m temporal_worker`) and M daphne web
processes, all on free loopback ports, configured only through the environment
(DEBUG=False, DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS, SECRET_KEY, ALLOWED_HOSTS,
LOG_FORMAT=json). `migrate`, `collectstatic` and `seed_demo` run first.

    .venv/bin/python scripts/prod_stack.py [--workers 2] [--webs 2]   # until Ctrl-C

From Python (tests/production, bench/load.py):

    with production_stack(workers=2, webs=2) as prod:
        prod.web_urls   # ["http://127.0.0.1:PORT", ...]

The web processes sit where a TLS-terminating proxy would forward to: clients send
`X-Forwarded-Proto: https` (see `PROXY_HEADERS`), or Django redirects them to HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatapp import stack  # noqa: E402

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
DB_NAME = "chat"
DB_USER = "chat"
DEMO_PASSWORD = "demo-pass-123"
# What the proxy in front of daphne adds to every request it forwards.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
PG_SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    # A throwaway database: durability buys nothing here.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "600",
    "shared_buffers": "64MB",
}


class ProdStackError(stack.StackError):
    pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class ProductionStack:
    """What is running, and how to reach it."""

    base_dir: Path
    web_urls: list[str]
    env: dict[str, str]
    temporal_address: str
    task_queue: str
    model_url: str
    database_url: str
    redis_url: str
    secrets: dict[str, str]
    children: list[Child] = field(default_factory=list)
    # Seconds from the start until each step was done.
    timings: dict[str, float] = field(default_factory=dict)
    # Filled in when the stack stops: each process's exit status (0 = clean).
    exit_codes: dict[str, int] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "log"

    def named(self, prefix: str) -> list[Child]:
        """The running children whose name starts with `prefix`."""
        return [c for c in self.children if c.name.startswith(prefix) and c.proc.poll() is None]

    @property
    def workers(self) -> list[Child]:
        return self.named("worker-")

    @property
    def webs(self) -> list[Child]:
        return self.named("web-")

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children}

    def worker_identities(self) -> dict[str, str]:
        """Temporal identity of each worker (the SDK's default: pid@hostname)."""
        host = socket.gethostname()
        return {c.name: f"{c.pid}@{host}" for c in self.workers}

    def manage(self, *args: str, timeout: float = 300.0) -> str:
        """Run `manage.py ARGS` against this stack; returns its stdout."""
        return _manage(
            list(args), env=self.env, log_path=self.log_dir / "manage.log", timeout=timeout
        )

    def worker_add(self) -> Child:
        """Start one more worker process and wait until Temporal sees it polling."""
        started = [c for c in self.children if c.name.startswith("worker-")]
        number = 1 + max((int(c.name.split("-")[1]) for c in started), default=0)
        child = _start(
            f"worker-{number}",
            [sys.executable, "-m", "temporal_worker"],
            log_dir=self.log_dir,
            env=self.env,
        )
        self.children.append(child)
        identity = f"{child.pid}@{socket.gethostname()}"
        asyncio.run(_wait_workers(self.temporal_address, self.task_queue, {identity}, [child]))
        return child

    def log_text(self, name: str) -> str:
        child = next(c for c in self.children if c.name == name)
        return child.log_path.read_text(errors="replace")


# --- finding the servers --------------------------------------------------------


def postgres_bindir() -> Path:
    """Debian keeps server binaries in /usr/lib/postgresql/<version>/bin (PG_BINDIR wins)."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/")[-3])] or [0],
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ProdStackError(
        "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BINDIR)"
    )


def redis_server_path() -> str:
    path = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not path:
        raise ProdStackError("redis-server not found (apt-get install redis-server)")
    return path


def _pg_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (PG_USER wins)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ProdStackError(
            f"running as root and there is no user {name!r} to run PostgreSQL as "
            "(apt-get install postgresql creates one; or set PG_USER)"
        ) from None


# --- child processes --------------------------------------------------------------


def _start(
    name: str,
    command: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    account: pwd.struct_passwd | None = None,
) -> Child:
    log_path = log_dir / f"{name}.log"
    if account is None:
        proc = stack.process_start(command, log_path=log_path, cwd=ROOT, env=env)
    else:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(command),
                cwd="/",
                env={**os.environ, **(env or {}), "HOME": account.pw_dir},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=account.pw_uid,
                group=account.pw_gid,
                extra_groups=[],
            )
    return Child(name=name, proc=proc, log_path=log_path)


def _run(
    command: Sequence[str],
    *,
    log_path: Path,
    account: pwd.struct_passwd | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> None:
    with log_path.open("ab") as log:
        log.write(f"\n--- {' '.join(command)}\n".encode())
        log.flush()
        kwargs: dict[str, object] = {}
        if account is not None:
            kwargs = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": [],
                "cwd": "/",
            }
        completed = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
            **kwargs,  # type: ignore[arg-type]
        )
    if completed.returncode != 0:
        raise ProdStackError(
            f"{command[0]} failed ({completed.returncode}):\n{stack.log_tail(log_path, 30)}"
        )


def _manage(
    args: list[str], *, env: Mapping[str, str], log_path: Path, timeout: float = 300.0
) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"\n--- manage.py {' '.join(args)}\n{completed.stdout}{completed.stderr}")
    if completed.returncode != 0:
        raise ProdStackError(
            f"manage.py {' '.join(args)} failed ({completed.returncode}):\n"
            f"{completed.stdout[-2000:]}{completed.stderr[-4000:]}"
        )
    return completed.stdout


def _signal(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, signum)


def _stop(
    children: Sequence[Child], signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS
) -> dict[str, int]:
    """Signal every child's process group, wait, SIGKILL what is left; exit codes by name."""
    for child in children:
        if child.proc.poll() is None:
            _signal(child, signum)
    deadline = time.monotonic() + timeout
    codes: dict[str, int] = {}
    for child in children:
        try:
            codes[child.name] = child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(child, signal.SIGKILL)
            codes[child.name] = child.proc.wait()
    return codes


def _note(log_dir: Path, text: str) -> None:
    with (log_dir / "stack.log").open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")


# --- readiness ------------------------------------------------------------------


def _wait_postgres(port: int, password: str, child: Child) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if child.proc.poll() is not None:
            raise ProdStackError(f"postgres exited:\n{stack.log_tail(child.log_path, 30)}")
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=DB_USER,
                password=password,
                dbname="postgres",
                connect_timeout=2,
                autocommit=True,
            ) as conn:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            return
        except psycopg.OperationalError as err:
            if time.monotonic() > deadline:
                raise ProdStackError(f"PostgreSQL did not accept connections: {err}") from err
            time.sleep(0.2)


async def _wait_temporal(address: str, child: Child) -> None:
    client = await stack.temporal_connect(
        address, wait_seconds=START_TIMEOUT_SECONDS, proc=child.proc
    )
    await stack.search_attributes_ensure(client, "default")


async def _wait_workers(
    address: str, task_queue: str, identities: set[str], workers: Sequence[Child]
) -> None:
    """Until Temporal lists every worker as a poller of both the workflow and activity queues."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    client = await stack.temporal_connect(address, wait_seconds=10)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while True:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise ProdStackError(
                    f"{worker.name} exited:\n{stack.log_tail(worker.log_path, 30)}"
                )
        seen: list[set[str]] = []
        for kind in kinds:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            seen.append({poller.identity for poller in response.pollers})
        if all(identities <= s for s in seen):
            return
        if time.monotonic() > deadline:
            raise ProdStackError(f"workers {sorted(identities)} not polling; Temporal sees {seen}")
        await asyncio.sleep(0.2)


# --- the stack --------------------------------------------------------------------


@contextlib.contextmanager
def production_stack(
    *,
    workers: int = 2,
    webs: int = 2,
    chunk_delay_ms: int = 0,
    extra_env: Mapping[str, str] | None = None,
    keep: bool = False,
    logs_to: Path | None = None,
) -> Iterator[ProductionStack]:
    """Start everything, yield it, stop everything (in reverse order) and delete its folder.

    `keep=True` leaves the folder (databases and logs) in place; `logs_to` gets a copy
    of the logs after everything stopped.
    """
    base_dir = Path(tempfile.mkdtemp(prefix="prod-stack-"))
    base_dir.chmod(0o755)  # the PostgreSQL account must reach its data folder
    log_dir = base_dir / "log"
    log_dir.mkdir()
    children: list[Child] = []
    prod: ProductionStack | None = None
    try:
        prod = _start_all(
            base_dir,
            log_dir,
            children,
            workers=workers,
            webs=webs,
            chunk_delay_ms=chunk_delay_ms,
            extra_env=extra_env or {},
        )
        yield prod
    finally:
        codes = _stop_all(children)
        if prod is not None:
            prod.exit_codes = codes
        _note(log_dir, f"stopped: {codes}")
        if logs_to is not None:
            shutil.rmtree(logs_to, ignore_errors=True)
            shutil.copytree(log_dir, logs_to)
        if not keep:
            shutil.rmtree(base_dir, ignore_errors=True)


def _start_all(
    base_dir: Path,
    log_dir: Path,
    children: list[Child],
    *,
    workers: int,
    webs: int,
    chunk_delay_ms: int,
    extra_env: Mapping[str, str],
) -> ProductionStack:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 2)

    ports = {name: stack.free_port() for name in ("pg", "redis", "temporal", "ui", "model")}
    web_ports = [stack.free_port() for _ in range(webs)]
    pg_password = secrets.token_urlsafe(18)
    redis_password = secrets.token_urlsafe(18)
    secret_key = secrets.token_urlsafe(50)

    # PostgreSQL: a fresh cluster owned by the non-root account.
    account = _pg_account()
    bindir = postgres_bindir()
    pg_dir = base_dir / "pg"
    pg_dir.mkdir(mode=0o700)
    password_file = pg_dir / "password"
    password_file.write_text(pg_password + "\n")
    data_dir = pg_dir / "data"
    if account is not None:
        os.chown(pg_dir, account.pw_uid, account.pw_gid)
        os.chown(password_file, account.pw_uid, account.pw_gid)
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            DB_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--no-sync",
        ],
        log_path=log_dir / "initdb.log",
        account=account,
    )
    step("initdb")
    pg_command = [str(bindir / "postgres"), "-D", str(data_dir), "-p", str(ports["pg"])]
    for option, value in PG_SERVER_OPTIONS.items():
        pg_command += ["-c", f"{option}={value}"]
    postgres = _start("postgres", pg_command, log_dir=log_dir, account=account)
    children.append(postgres)

    # The password goes in a file: command lines show up in `ps` and in our logs.
    redis_conf = base_dir / "redis.conf"
    redis_conf.touch(mode=0o600)
    redis_conf.write_text(f"requirepass {redis_password}\n")
    redis = _start(
        "redis",
        [
            redis_server_path(),
            str(redis_conf),
            "--port",
            str(ports["redis"]),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(base_dir),
            "--loglevel",
            "warning",
        ],
        log_dir=log_dir,
    )
    children.append(redis)
    temporal_address = f"127.0.0.1:{ports['temporal']}"
    temporal = _start(
        "temporal",
        stack.temporal_dev_server_command(
            db_path=base_dir / "temporal.db", port=ports["temporal"], ui_port=ports["ui"]
        ),
        log_dir=log_dir,
    )
    children.append(temporal)
    model = _start(
        "model",
        [
            *stack.scripted_model_command(port=ports["model"]),
            "--chunk-delay-ms",
            str(chunk_delay_ms),
        ],
        log_dir=log_dir,
    )
    children.append(model)

    database_url = f"postgres://{DB_USER}:{pg_password}@127.0.0.1:{ports['pg']}/{DB_NAME}"
    redis_url = f"redis://:{redis_password}@127.0.0.1:{ports['redis']}/0"
    task_queue = "agent-chat-prod"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "DJANGO_SETTINGS_MODULE": "chatapp.settings",
        "DEBUG": "False",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": "",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "EMBEDDED_WORKER": "False",
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": task_queue,
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{ports['ui']}",
        "TEMPORAL_API_KEY": "",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{ports['model']}/v1",
        "AGENT_MODEL": "scripted",
        "VAR_DIR": str(base_dir / "var"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    prod = ProductionStack(
        base_dir=base_dir,
        web_urls=[f"http://127.0.0.1:{p}" for p in web_ports],
        env=env,
        temporal_address=temporal_address,
        task_queue=task_queue,
        model_url=f"http://127.0.0.1:{ports['model']}",
        database_url=database_url,
        redis_url=redis_url,
        children=children,
        timings=timings,
        secrets={
            "SECRET_KEY": secret_key,
            "postgres password": pg_password,
            "redis password": redis_password,
        },
    )

    # collectstatic needs no database: run it while the servers come up.
    with ThreadPoolExecutor(max_workers=2) as pool:
        collect = pool.submit(prod.manage, "collectstatic", "--noinput", "-v0")
        _wait_postgres(ports["pg"], pg_password, postgres)
        step("postgres")
        prod.manage("migrate", "--noinput", "-v0")
        step("migrate")
        prod.manage("seed_demo")
        step("seed_demo")
        collect.result()
        step("collectstatic")
    stack.wait_for_port("127.0.0.1", ports["redis"], proc=redis.proc, what="redis-server")
    asyncio.run(_wait_temporal(temporal_address, temporal))
    step("temporal")
    stack.wait_for_http(f"{prod.model_url}/healthz", proc=model.proc, what="the scripted model")

    for index in range(workers):
        children.append(
            _start(
                f"worker-{index + 1}",
                [sys.executable, "-m", "temporal_worker"],
                log_dir=log_dir,
                env=env,
            )
        )
    for index, port in enumerate(web_ports):
        children.append(
            _start(
                f"web-{index + 1}",
                [
                    stack.venv_bin("daphne"),
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--proxy-headers",
                    # Access logs belong to the proxy; 1 here adds daphne's (plain text) to the log.
                    "-v",
                    os.environ.get("PROD_STACK_DAPHNE_VERBOSITY", "0"),
                    "chatapp.asgi:application",
                ],
                log_dir=log_dir,
                env=env,
            )
        )
    started_webs = [c for c in children if c.name.startswith("web-")]
    for web, url in zip(started_webs, prod.web_urls, strict=True):
        stack.wait_for_http(
            f"{url}/healthz", timeout=START_TIMEOUT_SECONDS, proc=web.proc, what=web.name
        )
    step("web")
    started_workers = [c for c in children if c.name.startswith("worker-")]
    host = socket.gethostname()
    asyncio.run(
        _wait_workers(
            temporal_address,
            task_queue,
            {f"{c.pid}@{host}" for c in started_workers},
            started_workers,
        )
    )
    step("workers")
    _note(log_dir, f"started: {timings}")
    return prod


def _stop_all(children: list[Child]) -> dict[str, int]:
    """Web first (no new work), then workers (finish in-flight work), then the servers."""
    codes: dict[str, int] = {}
    order = [
        ([c for c in children if c.name.startswith("web-")], signal.SIGTERM),
        ([c for c in children if c.name.startswith("worker-")], signal.SIGTERM),
        ([c for c in children if c.name in ("model", "temporal", "redis")], signal.SIGTERM),
        # SIGINT is PostgreSQL's "fast" shutdown: no waiting for clients to leave.
        ([c for c in children if c.name == "postgres"], signal.SIGINT),
    ]
    for group, signum in order:
        codes.update(_stop(group, signum))
    children.clear()
    return codes


# --- the client side: a browser, as far as the server can tell -----------------------

CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FORM_IDS_RE = re.compile(r'name="(conversation_id|message_id)" value="([^"]+)"')
STREAM_DELTA = "beforeend:#stream-"


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
        import aiohttp

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
        import aiohttp

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
                jar.update_cookies({"sessionid": session_key}, response_url=_url(url))

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
        import uuid

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
            deltas += data.count(STREAM_DELTA)
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


def _url(url: str) -> Any:
    from yarl import URL

    return URL(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--webs", type=int, default=2)
    parser.add_argument("--chunk-delay-ms", type=int, default=15)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    with production_stack(
        workers=args.workers, webs=args.webs, chunk_delay_ms=args.chunk_delay_ms, keep=True
    ) as prod:
        print(f"production stack up in {time.monotonic() - started:.1f}s; logs in {prod.log_dir}")
        for name, pid in prod.pids().items():
            print(f"  {name:<10} pid {pid}")
        for url in prod.web_urls:
            print(f"  web: {url}  (send X-Forwarded-Proto: https, or put a proxy in front)")
        print(
            f"  DATABASE_URL={prod.database_url}\n  REDIS_URL={prod.redis_url}\n"
            f"  TEMPORAL_ADDRESS={prod.temporal_address}\n  Ctrl-C stops everything."
        )
        with contextlib.suppress(KeyboardInterrupt):
            while all(c.proc.poll() is None for c in prod.children):
                time.sleep(0.5)
            dead = [c.name for c in prod.children if c.proc.poll() is not None]
            print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)


if __name__ == "__main__":
    main()
