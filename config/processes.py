"""Starting, waiting for, watching and stopping the stack's processes, on mirakuru.

`manage.py serve`, scripts/prod_stack.py, the benches and the tests that run real
processes all start them here. Nothing here imports Django, so tests may use it before
settings are configured.

A child leads its own session, so a terminal's Ctrl-C reaches only its parent, which
stops the children in order. On Linux the child also gets its stop signal when the
thread that started it ends (PR_SET_PDEATHSIG), so a `kill -9` of the parent takes it
along. Children carry their name and their parent's pid in their environment: a later
run can tell an orphan of ours from a server somebody started on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psutil
import stamina
from mirakuru import (
    AlreadyRunning,
    Executor,
    HTTPExecutor,
    ProcessExitedWithError,
    SimpleExecutor,
    TCPExecutor,
    TimeoutExpired,
)
from mirakuru.exceptions import ProcessFinishedWithError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from temporal_worker.contracts.approvals import SEARCH_ATTRIBUTES

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# Set in every child's environment: which child it is, and which process started it.
CHILD_ENV = "AGENT_CHAT_CHILD"
PARENT_ENV = "AGENT_CHAT_PARENT"
# One Client.connect attempt; a server that listens but does not answer yet is retried.
CONNECT_ATTEMPT_SECONDS = 5.0


class StackError(Exception):
    """A part of the stack did not start or stay up; the message says which and why."""


# --- addresses ------------------------------------------------------------------------


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """Split "host:port" (or a URL) into its parts."""
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Distinct free ports: each is held while the next is chosen, so two calls in a row
    cannot hand out the same port (a server then binds it a moment later)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def venv_bin(name: str) -> str:
    """A console script installed next to the running interpreter (the venv's bin)."""
    return str(Path(sys.executable).parent / name)


# --- command lines ----------------------------------------------------------------------


def temporal_dev_server_command(
    *,
    db_path: Path,
    ip: str = "127.0.0.1",
    port: int = 7233,
    ui_port: int = 8233,
    search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
) -> list[str]:
    command = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(db_path),
        "--ip",
        ip,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--ui-disable-news-fetch",
        "--log-level",
        "warn",
    ]
    for name, kind in search_attributes.items():
        command += ["--search-attribute", f"{name}={kind}"]
    return command


def scripted_model_command(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    chunk_delay_ms: int = 15,
    first_token_delay_ms: int = 0,
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "temporal_worker.scripted_model",
        "--host",
        host,
        "--port",
        str(port),
        "--chunk-delay-ms",
        str(chunk_delay_ms),
        "--first-token-delay-ms",
        str(first_token_delay_ms),
    ]


# --- children -----------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform == "linux":
    # Looked up here: between fork and exec only the call itself is safe.
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _session_start(death_signal: int | None, parent: int) -> Callable[[], None]:
    """What a child runs between fork and exec: a session of its own and, on Linux, a
    signal when the thread that forked it ends (the kernel tracks the thread)."""

    def preexec() -> None:
        os.setsid()
        if death_signal is not None and _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, death_signal)
            if os.getppid() != parent:  # the parent died before the line above
                os._exit(1)

    return preexec


class _SessionExecutor(SimpleExecutor):
    """mirakuru's executor, plus: the child dies with the thread that started it, its
    start can be split from the wait for readiness, stopping has its own timeout, and
    the ended process stays readable for its exit status."""

    def __init__(
        self, command: list[str], *, stop_timeout: float, die_with_parent: bool, **kwargs: Any
    ) -> None:
        super().__init__(command, **kwargs)
        self._stop_timeout = stop_timeout
        self._die_with_parent = die_with_parent
        self.last_process: subprocess.Popen[str] | None = None

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs = super()._popen_kwargs
        death_signal = self._stop_signal if self._die_with_parent else None
        kwargs["preexec_fn"] = _session_start(death_signal, os.getpid())
        return kwargs

    def launch(self) -> None:
        """`start()` without its wait for readiness (that is `wait_ready()`)."""
        if isinstance(self, Executor) and self.pre_start_check():
            raise AlreadyRunning(self)
        SimpleExecutor.start(self)

    def wait_ready(self) -> None:
        # mirakuru's deadline runs from launch. Children are launched together and waited
        # for one after another, so a slow first one would use up the others' time: each
        # gets its whole timeout from the moment it is waited for.
        if isinstance(self, Executor):
            self._set_timeout()
            self.wait_for(self.check_subprocess)

    def stop(
        self, stop_signal: int | None = None, expected_returncode: int | None = None
    ) -> _SessionExecutor:
        # mirakuru waits `timeout` for a stop as for a start; stopping has a shorter one.
        start_timeout, self._timeout = self._timeout, self._stop_timeout
        try:
            super().stop(stop_signal, expected_returncode)
        finally:
            self._timeout = start_timeout
        return self

    def _clear_process(self) -> None:
        if self.process is not None:
            self.last_process = self.process
        super()._clear_process()


class _SimpleChild(_SessionExecutor):
    pass


class _TCPChild(_SessionExecutor, TCPExecutor):
    pass


class _HTTPChild(_SessionExecutor, HTTPExecutor):
    pass


@dataclass(eq=False)
class Child:
    """A child process: its command, when it counts as ready, where its output goes.

    `start()` returns once it is ready (`ready_port` accepts connections, `ready_url`
    answers 2xx to a GET; without either, at once) and raises StackError, with the end
    of its log, if it exits or is not ready within `start_timeout`. `launch()` and then
    `wait_ready()` do the same in two steps, so several children come up side by side
    (from the thread they should die with). After it ended, `start()` runs the same
    command again. `env` adds to this process's environment.
    """

    name: str
    command: Sequence[str]
    log_path: Path
    ready_port: tuple[str, int] | None = None
    ready_url: str | None = None
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    start_timeout: float = START_TIMEOUT_SECONDS
    stop_timeout: float = STOP_TIMEOUT_SECONDS
    stop_signal: int = signal.SIGTERM
    # False only to leave a child behind on purpose (the tests of orphan clean-up).
    die_with_parent: bool = True
    # More subprocess.Popen arguments (user, group: PostgreSQL refuses to run as root).
    popen_kwargs: Mapping[str, Any] = field(default_factory=dict)
    _executor: _SessionExecutor | None = field(default=None, init=False, repr=False)

    @property
    def proc(self) -> subprocess.Popen[str]:
        """The latest process; still there after it ended, with its exit status."""
        proc = self._process()
        if proc is None:
            raise StackError(f"{self.name} was never started")
        return proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status (negative: the signal that ended it); None while it runs or
        when no process started."""
        proc = self._process()
        return None if proc is None else proc.poll()

    def running(self) -> bool:
        proc = self._process()
        return proc is not None and proc.poll() is None

    def start(self) -> Child:
        return self.launch().wait_ready()

    def launch(self) -> Child:
        if self.running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        if self._executor is not None:
            self._executor.kill()  # reap the last one and whatever it left in its group
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(self.command)}\n")
            log.flush()
            self._executor = self._executor_new(log)
            try:
                self._executor.launch()
            except AlreadyRunning:
                raise StackError(
                    f"cannot start {self.name}: {self._address()} is already in use"
                ) from None
        return self

    def wait_ready(self) -> Child:
        if self._executor is None:
            raise StackError(f"{self.name} was never started")
        try:
            self._executor.wait_ready()
        except ProcessExitedWithError as err:
            raise StackError(
                f"{self.name} exited with status {err.exit_code} before it was ready; "
                f"{self.log_path} ends with:\n{self.log_tail()}"
            ) from None
        except TimeoutExpired:
            raise StackError(
                f"{self.name} was not ready on {self._address()} within "
                f"{self.start_timeout:.0f}s (killed it); {self.log_path} ends with:\n"
                f"{self.log_tail()}"
            ) from None
        return self

    def stop(self, signum: int | None = None) -> int | None:
        """Its stop signal (or `signum`) to its process group, up to `stop_timeout` to
        exit, then SIGKILL; its exit status (None if it never started)."""
        if self._executor is None:
            return None
        # A status other than 0 or -signal is for the caller to judge, not an error here.
        with contextlib.suppress(ProcessFinishedWithError):
            self._executor.stop(stop_signal=signum)
        return self.returncode

    def kill(self, signum: int = signal.SIGKILL) -> int | None:
        """`signum` to its process group without grace, as a crash would; its exit status."""
        if self._executor is None:
            return None
        self._executor.kill(sig=signum)
        return self.returncode

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def _process(self) -> subprocess.Popen[str] | None:
        executor = self._executor
        return None if executor is None else executor.process or executor.last_process

    def _address(self) -> str:
        if self.ready_url:
            return self.ready_url
        if self.ready_port:
            return f"{self.ready_port[0]}:{self.ready_port[1]}"
        return "its address"

    def _executor_new(self, log: IO[str]) -> _SessionExecutor:
        options: dict[str, Any] = {
            # mirakuru adds these to our environment, and its own marker.
            "envvars": {**(self.env or {}), CHILD_ENV: self.name, PARENT_ENV: str(os.getpid())},
            "stop_timeout": self.stop_timeout,
            "die_with_parent": self.die_with_parent,
            "cwd": str(self.cwd) if self.cwd else None,
            "timeout": self.start_timeout,
            "stop_signal": self.stop_signal,
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "popen_kwargs": dict(self.popen_kwargs),
        }
        command = list(self.command)
        if self.ready_url:
            return _HTTPChild(
                command, url=self.ready_url, method="GET", request_timeout=2.0, **options
            )
        if self.ready_port:
            host, port = self.ready_port
            return _TCPChild(command, host=host, port=port, **options)
        return _SimpleChild(command, **options)


def stop_all(children: Sequence[Child], signum: int | None = None) -> dict[str, int]:
    """Stop the children side by side; the exit status of each one that ran, by name."""
    if not children:
        return {}
    with ThreadPoolExecutor(max_workers=len(children)) as pool:
        codes = list(pool.map(lambda child: child.stop(signum), children))
    return {
        child.name: code for child, code in zip(children, codes, strict=True) if code is not None
    }


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_note(log_path: Path, text: str) -> None:
    """A line of ours in a child's log, marked like the start banner."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


# --- watching -------------------------------------------------------------------------------


class Supervisor:
    """Watches children from a thread of its own and starts one that exited again, at
    most `restarts` times within `window` seconds; past that it calls `give_up` and
    stops them all.

    The watching thread also stops the children at `close()`: a child it restarted
    dies with it (see `_session_start`), and should go in order, not by that signal.
    """

    def __init__(
        self,
        children: Sequence[Child],
        *,
        report: Callable[[str], None],
        give_up: Callable[[str], None],
        restarts: int = 3,
        window: float = 60.0,
        interval: float = 0.2,
    ) -> None:
        self.children = list(children)
        self.report = report
        self.give_up = give_up
        self.restarts = restarts
        self.window = window
        self.interval = interval
        self._restarted_at: dict[str, deque[float]] = {}
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop watching, then stop every child; waits for a restart under way."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()
        stop_all(self.children)

    def _watch(self) -> None:
        try:
            while not self._closing.wait(self.interval):
                for child in self.children:
                    if child.running() or self._closing.is_set():
                        continue
                    if not self._restart(child):
                        return
        except Exception as err:  # unwatched children must not go unnoticed
            self.give_up(f"watching {', '.join(c.name for c in self.children)} failed: {err!r}")
        finally:
            stop_all(self.children)

    def _restart(self, child: Child) -> bool:
        """Start `child` again; False when it has used up its restarts."""
        code = child.returncode
        ended = "did not start" if code is None else f"exited with status {code}"
        now = time.monotonic()
        recent = self._restarted_at.setdefault(child.name, deque())
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) >= self.restarts:
            message = (
                f"{child.name} {ended} after {len(recent)} restarts within "
                f"{self.window:.0f} s: giving up, stopping everything"
            )
            log_note(child.log_path, message)
            self.give_up(f"{message}\n--- {child.log_path} ends with:\n{child.log_tail()}")
            return False
        recent.append(now)
        message = (
            f"{child.name} {ended}; restarting it "
            f"({len(recent)} of {self.restarts} within {self.window:.0f} s)"
        )
        log_note(child.log_path, message)
        self.report(message)
        try:
            child.start()
        except StackError as err:
            # It ended again: the next round counts that, and tries again or gives up.
            self.report(str(err))
        else:
            self.report(f"{child.name} is running again (pid {child.pid})")
        return True


# --- what is already listening ---------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """The process accepting connections on a port, as far as this user can see."""

    port: int
    pid: int | None = None
    # The name a run of ours gave it; "" when no run of ours started it.
    child: str = ""
    # Ours, and the process that started it is gone: nobody will stop it.
    orphan: bool = False

    def describe(self) -> str:
        if self.pid is None:
            return f"a process we cannot inspect on port {self.port}"
        if not self.child:
            return f"pid {self.pid} on port {self.port} (not started by us)"
        where = f"{self.child} (pid {self.pid}) on port {self.port}"
        if self.orphan:
            return f"{where}, left by an earlier run: its parent is gone"
        return f"{where}, a child of another run that still runs"


def port_listener(port: int) -> Listener | None:
    """Who listens on `port` (on any address); None when nobody does."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return Listener(port) if port_open("127.0.0.1", port) else None
    pids = {
        conn.pid
        for conn in connections
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    }
    if not pids:
        return None
    pid = next((p for p in pids if p), None)
    if pid is None:
        return Listener(port)
    try:
        process = psutil.Process(pid)
        environment = process.environ()
        child = environment.get(CHILD_ENV, "")
        parent = int(environment.get(PARENT_ENV) or 0)
        orphan = bool(child) and parent not in {p.pid for p in process.parents()}
    except (psutil.Error, ValueError):
        return Listener(port, pid)
    return Listener(port, pid, child, orphan)


def orphan_stop(listener: Listener, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop an orphan of ours (SIGTERM to the process group it leads, SIGKILL if it
    lingers) and wait until its port is free."""
    pid = listener.pid
    if pid is None or not listener.orphan:
        raise StackError(f"not an orphan of ours: {listener.describe()}")

    def send(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    send(signal.SIGTERM)
    try:
        _wait_until(gone, timeout=timeout, what=f"pid {pid} to exit")
    except StackError:
        send(signal.SIGKILL)
        _wait_until(gone, timeout=5, what=f"pid {pid} to exit after SIGKILL")
    _wait_until(
        lambda: port_listener(listener.port) is None,
        timeout=5,
        what=f"port {listener.port} to be free",
    )


# --- waiting for what somebody else started ----------------------------------------------------


def _wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Ask `check` until it says yes; StackError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise StackError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.1)


def wait_for_port(host: str, port: int, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
    _wait_until(lambda: port_open(host, port), timeout=timeout, what=f"{host}:{port} to listen")


def wait_for_http(url: str, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until GET `url` answers 2xx."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError):
            return False

    _wait_until(answers, timeout=timeout, what=f"{url} to answer")


# --- Temporal ------------------------------------------------------------------------------------


def _unreachable(err: Exception) -> bool:
    # Client.connect says RuntimeError("Failed client connect: ...") while nothing serves.
    return isinstance(err, RuntimeError | ConnectionError | TimeoutError)


async def temporal_connect(
    address: str, *, namespace: str = "default", wait_seconds: float = START_TIMEOUT_SECONDS
) -> Client:
    """Connect to Temporal, trying again while it does not answer (a server that was just
    started listens a moment before it serves), for up to `wait_seconds`."""
    try:
        async for attempt in stamina.retry_context(
            on=_unreachable,
            attempts=None,
            timeout=wait_seconds,
            wait_initial=0.1,
            wait_max=1.0,
            wait_jitter=0.1,
        ):
            with attempt:
                async with asyncio.timeout(CONNECT_ATTEMPT_SECONDS):
                    return await Client.connect(address, namespace=namespace)
    except (RuntimeError, ConnectionError, TimeoutError) as err:
        raise StackError(
            f"Temporal at {address} did not answer within {wait_seconds:.0f}s: {err}"
        ) from err
    raise AssertionError("unreachable: stamina re-raises the last error")


async def search_attributes_ensure(
    client: Client, namespace: str, wanted: Mapping[str, str] = SEARCH_ATTRIBUTES
) -> list[str]:
    """Register missing custom search attributes (a reused server may lack them).

    Returns the names added.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{_snake_upper(kind)}")
        for name, kind in wanted.items()
        if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


def _snake_upper(kind: str) -> str:
    """Turn "KeywordList" into "KEYWORD_LIST"."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(kind)).upper()
