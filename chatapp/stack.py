"""The embedded stack's moving parts: ports, child processes and readiness waits.

Used by `manage.py serve` and by tests that start the same processes. Nothing
here imports Django, so tests may use it before settings are configured.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from temporal_worker import shared

# Custom search attributes the workflows upsert and the reviewer dashboard queries
# (one list, in temporal_worker.shared); registered when the dev server starts.
SEARCH_ATTRIBUTES: dict[str, str] = dict(shared.SEARCH_ATTRIBUTES)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
STOP_TIMEOUT_SECONDS = 10.0


class StackError(Exception):
    """A part of the stack did not start; the message says which and why."""


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
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str:
    """A console script installed next to the running interpreter (the venv's bin)."""
    return str(Path(sys.executable).parent / name)


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


def scripted_model_command(*, host: str = "127.0.0.1", port: int = 8765) -> list[str]:
    return [
        sys.executable,
        "-m",
        "temporal_worker.scripted_model",
        "--host",
        host,
        "--port",
        str(port),
    ]


def process_start(
    command: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session, output appended to `log_path`.

    Its own session means a terminal's Ctrl-C reaches only us; we stop the child
    ourselves, in order, with SIGTERM so it can flush its state.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def processes_stop(
    processes: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """SIGTERM every child's process group, wait up to `timeout`, then SIGKILL what is left."""
    for proc in processes:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _check_alive(proc: subprocess.Popen[bytes] | None, what: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise StackError(f"{what} exited with status {proc.returncode}")


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "process",
) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        _check_alive(proc, what)
        if time.monotonic() > deadline:
            raise StackError(f"{what} did not listen on {host}:{port} within {timeout:.0f}s")
        time.sleep(0.1)


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "process",
) -> None:
    """Wait until GET `url` answers 2xx."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        _check_alive(proc, what)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as err:
            last_error = str(err)
        if time.monotonic() > deadline:
            raise StackError(f"{what} did not answer {url} within {timeout:.0f}s: {last_error}")
        time.sleep(0.2)


async def temporal_connect(
    address: str,
    *,
    namespace: str = "default",
    wait_seconds: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> Client:
    """Connect to Temporal, retrying until it answers or `wait_seconds` pass."""
    deadline = time.monotonic() + wait_seconds
    while True:
        _check_alive(proc, "the Temporal dev server")
        remaining = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(
                Client.connect(address, namespace=namespace), timeout=max(1.0, remaining)
            )
        except Exception as err:
            if time.monotonic() > deadline:
                raise StackError(
                    f"Temporal at {address} did not answer within {wait_seconds:.0f}s: {err}"
                ) from err
        await asyncio.sleep(0.25)


async def search_attributes_ensure(
    client: Client, namespace: str, wanted: Mapping[str, str] = SEARCH_ATTRIBUTES
) -> list[str]:
    """Register missing custom search attributes (a reused dev server may lack them).

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
