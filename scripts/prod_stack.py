"""A production-shaped stack on one machine, every part its own process.

PostgreSQL (initdb into a temporary folder, as a non-root user), Redis, a Temporal dev
server, the scripted model, N workers (`python -m temporal_worker`) and M daphne web
processes, all on free loopback ports, configured only through the environment
(DEBUG=False, DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS, SECRET_KEY, ALLOWED_HOSTS,
LOG_FORMAT=json). `migrate`, `collectstatic` and `seed_demo` run first. The processes
start, wait and stop through config/processes.py.

    .venv/bin/python scripts/prod_stack.py [--workers 2] [--webs 2]   # until Ctrl-C

From Python (tests/production, bench/load.py):

    with production_stack(workers=2, webs=2) as prod:
        prod.web_urls   # ["http://127.0.0.1:PORT", ...]

The web processes sit where a TLS-terminating proxy would forward to: clients send
`X-Forwarded-Proto: https` (scripts/chat_client.py does), or Django redirects them to
HTTPS.
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

import stamina

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config import processes  # noqa: E402
from config.processes import Child  # noqa: E402

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
DB_NAME = "chat"
DB_USER = "chat"
DEMO_PASSWORD = "demo-pass-123"
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
# Stopped in this order: web first (no new work), then the workers (they finish their
# in-flight work), then the servers.
STOP_ORDER = (("web-",), ("worker-",), ("model", "temporal", "redis"), ("postgres",))


class ProdStackError(processes.StackError):
    pass


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
        return [c for c in self.children if c.name.startswith(prefix) and c.running()]

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
        child = _worker(number, log_dir=self.log_dir, env=self.env)
        self.children.append(child)
        child.start()
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


def _as_account(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """subprocess arguments that run a command as `account` (nothing when None)."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


# --- child processes --------------------------------------------------------------


def _child(name: str, command: Sequence[str], *, log_dir: Path, **options: Any) -> Child:
    options.setdefault("cwd", ROOT)
    return Child(
        name=name,
        command=command,
        log_path=log_dir / f"{name}.log",
        start_timeout=START_TIMEOUT_SECONDS,
        stop_timeout=STOP_TIMEOUT_SECONDS,
        **options,
    )


def _worker(number: int, *, log_dir: Path, env: Mapping[str, str]) -> Child:
    return _child(
        f"worker-{number}", [sys.executable, "-m", "temporal_worker"], log_dir=log_dir, env=env
    )


def _run(
    command: Sequence[str],
    *,
    log_path: Path,
    account: pwd.struct_passwd | None = None,
    timeout: float = 120.0,
) -> None:
    """Run a one-off command (initdb) to its end, output appended to `log_path`."""
    with log_path.open("ab") as log:
        log.write(f"\n--- {' '.join(command)}\n".encode())
        log.flush()
        completed = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            cwd="/" if account is not None else None,
            **_as_account(account),
        )
    if completed.returncode != 0:
        raise ProdStackError(
            f"{command[0]} failed ({completed.returncode}):\n{processes.log_tail(log_path, 30)}"
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


def _note(log_dir: Path, text: str) -> None:
    with (log_dir / "stack.log").open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")


# --- readiness beyond an open port ---------------------------------------------------


def _database_create(port: int, password: str) -> None:
    """CREATE DATABASE, trying again while PostgreSQL listens but still starts up."""
    import psycopg

    for attempt in stamina.retry_context(
        on=psycopg.OperationalError, attempts=None, timeout=START_TIMEOUT_SECONDS
    ):
        with (
            attempt,
            psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=DB_USER,
                password=password,
                dbname="postgres",
                connect_timeout=2,
                autocommit=True,
            ) as conn,
        ):
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


async def _wait_temporal(address: str) -> None:
    client = await processes.temporal_connect(address, wait_seconds=START_TIMEOUT_SECONDS)
    await processes.search_attributes_ensure(client, "default")


async def _wait_workers(
    address: str, task_queue: str, identities: set[str], workers: Sequence[Child]
) -> None:
    """Until Temporal lists every worker as a poller of both the workflow and activity queues."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    client = await processes.temporal_connect(address, wait_seconds=10)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while True:
        for worker in workers:
            if not worker.running():
                raise ProdStackError(f"{worker.name} exited:\n{worker.log_tail(30)}")
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
    """Start everything, yield it, stop everything (in order) and delete its folder.

    Call it from a thread that outlives the stack: the children die with the thread
    that started them. `keep=True` leaves the folder (databases and logs) in place;
    `logs_to` gets a copy of the logs after everything stopped.
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

    names = ("pg", "redis", "temporal", "ui", "model")
    picked = processes.free_ports(len(names) + webs)
    ports = dict(zip(names, picked[: len(names)], strict=True))
    web_ports = picked[len(names) :]
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
    postgres = _child(
        "postgres",
        pg_command,
        log_dir=log_dir,
        ready_port=("127.0.0.1", ports["pg"]),
        # SIGINT is PostgreSQL's "fast" shutdown: no waiting for clients to leave.
        stop_signal=signal.SIGINT,
        cwd=Path("/"),
        env={"HOME": account.pw_dir} if account is not None else None,
        popen_kwargs=_as_account(account),
    )

    # The password goes in a file: command lines show up in `ps` and in our logs.
    redis_conf = base_dir / "redis.conf"
    redis_conf.touch(mode=0o600)
    redis_conf.write_text(f"requirepass {redis_password}\n")
    redis = _child(
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
        ready_port=("127.0.0.1", ports["redis"]),
    )
    temporal_address = f"127.0.0.1:{ports['temporal']}"
    temporal = _child(
        "temporal",
        processes.temporal_dev_server_command(
            db_path=base_dir / "temporal.db", port=ports["temporal"], ui_port=ports["ui"]
        ),
        log_dir=log_dir,
        ready_port=("127.0.0.1", ports["temporal"]),
    )
    model_url = f"http://127.0.0.1:{ports['model']}"
    model = _child(
        "model",
        processes.scripted_model_command(port=ports["model"], chunk_delay_ms=chunk_delay_ms),
        log_dir=log_dir,
        ready_url=f"{model_url}/healthz",
    )
    # Side by side: each one's readiness is awaited where the next step needs it.
    for server in (postgres, redis, temporal, model):
        children.append(server)
        server.launch()

    database_url = f"postgres://{DB_USER}:{pg_password}@127.0.0.1:{ports['pg']}/{DB_NAME}"
    redis_url = f"redis://:{redis_password}@127.0.0.1:{ports['redis']}/0"
    task_queue = "agent-chat-prod"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "False",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The public address approval emails and Slack messages link to (none leave here).
        "SITE_URL": "https://chat.example.test",
        # Passkeys are bound to the public host and origins (what the proxy serves).
        "PASSKEY_RP_ID": "127.0.0.1",
        "PASSKEY_ORIGINS": ",".join(f"https://127.0.0.1:{port}" for port in web_ports),
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
        "OPENAI_BASE_URL": f"{model_url}/v1",
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
        model_url=model_url,
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
    with ThreadPoolExecutor(max_workers=1) as pool:
        collect = pool.submit(prod.manage, "collectstatic", "--noinput", "-v0")
        postgres.wait_ready()
        _database_create(ports["pg"], pg_password)
        step("postgres")
        prod.manage("migrate", "--noinput", "-v0")
        step("migrate")
        prod.manage("seed_demo")
        step("seed_demo")
        collect.result()
        step("collectstatic")
    redis.wait_ready()
    temporal.wait_ready()
    asyncio.run(_wait_temporal(temporal_address))
    step("temporal")
    model.wait_ready()

    started_workers = [_worker(n, log_dir=log_dir, env=env) for n in range(1, workers + 1)]
    started_webs = [
        _child(
            f"web-{index}",
            [
                processes.venv_bin("daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "--proxy-headers",
                # Access logs belong to the proxy; 1 here adds daphne's (plain text) to the log.
                "-v",
                os.environ.get("PROD_STACK_DAPHNE_VERBOSITY", "0"),
                "config.asgi:application",
            ],
            log_dir=log_dir,
            env=env,
            ready_url=f"http://127.0.0.1:{port}/healthz",
        )
        for index, port in enumerate(web_ports, 1)
    ]
    for child in [*started_workers, *started_webs]:
        children.append(child)
        child.launch()
    for web in started_webs:
        web.wait_ready()
    step("web")
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
    """Each group of STOP_ORDER side by side, one group after the other."""
    codes: dict[str, int] = {}
    for prefixes in STOP_ORDER:
        codes.update(processes.stop_all([c for c in children if c.name.startswith(prefixes)]))
    children.clear()
    return codes


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
            while all(c.running() for c in prod.children):
                time.sleep(0.5)
            dead = [c.name for c in prod.children if not c.running()]
            print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)


if __name__ == "__main__":
    main()
