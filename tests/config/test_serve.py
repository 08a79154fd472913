"""`manage.py serve` ties its children's lifetime to its own: real processes, no mocks.

serve runs with --no-temporal --no-worker, so the scripted model is its only child: that
is enough to watch the supervision, which treats the Temporal dev server the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from config import processes

BASE_DIR = Path(__file__).resolve().parents[2]
# A child that outlives serve must be gone by then (it gets SIGTERM from the kernel).
GONE_WITHIN_SECONDS = 5.0
RESTARTED_WITHIN_SECONDS = 15.0

# What a serve that died without its children leaves behind (one from before they died
# with it, or one whose child ignored the signal): a scripted model marked as started by
# serve, whose parent is gone. `os._exit` skips every clean-up on the way out.
ORPHAN_LAUNCHER = """
import os, sys
from pathlib import Path
from config import processes
port, log_path = int(sys.argv[1]), Path(sys.argv[2])
model = processes.Child(
    name="scripted-model",
    command=processes.scripted_model_command(port=port),
    log_path=log_path,
    ready_url=f"http://127.0.0.1:{port}/healthz",
    die_with_parent=False,
).start()
print(model.pid, flush=True)
os._exit(0)
"""


@dataclass
class RunningServe:
    child: processes.Child
    model_port: int
    var_dir: Path

    def output(self) -> str:
        return self.child.log_path.read_text(errors="replace")

    def model_pid(self) -> int | None:
        """The process answering on the scripted model's port, if one answers."""
        if not _answers(f"http://127.0.0.1:{self.model_port}/healthz"):
            return None
        listener = processes.port_listener(self.model_port)
        return None if listener is None else listener.pid


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _eventually(check: Callable[[], object], *, within: float, what: str) -> object:
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        time.sleep(0.1)
    return result


def _parent(pid: int) -> int:
    return int(psutil.Process(pid).ppid())


@pytest.fixture
def serve_started(tmp_path: Path) -> Iterator[Callable[..., RunningServe]]:
    """Starts `manage.py serve` on free ports with a folder of its own; stops it after."""
    started: list[processes.Child] = []

    def start(model_port: int | None = None) -> RunningServe:
        model_port = model_port or processes.free_port()
        web_port = processes.free_port()
        var_dir = tmp_path / f"var-{len(started) + 1}"
        env = {
            "VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DEBUG": "True",
            "REDIS_URL": "",
            "OPENAI_API_KEY": "",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
            "SCRIPTED_MODEL_PORT": str(model_port),
            # Nobody listens there: with --no-temporal --no-worker nothing connects.
            "TEMPORAL_ADDRESS": f"127.0.0.1:{processes.free_port()}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        serve = processes.Child(
            name="serve",
            command=[
                sys.executable,
                "manage.py",
                "serve",
                "--port",
                str(web_port),
                "--no-temporal",
                "--no-worker",
            ],
            log_path=tmp_path / f"serve-{len(started) + 1}.log",
            cwd=BASE_DIR,
            env=env,
            ready_url=f"http://127.0.0.1:{web_port}/healthz",
            start_timeout=60,
            stop_signal=signal.SIGINT,
        )
        started.append(serve)
        serve.start()
        return RunningServe(serve, model_port, var_dir)

    try:
        yield start
    finally:
        processes.stop_all(started)


def test_a_kill_9_of_serve_takes_its_scripted_model_along(
    serve_started: Callable[..., RunningServe],
) -> None:
    serve = serve_started()
    model_pid = serve.model_pid()
    assert model_pid is not None and _parent(model_pid) == serve.child.pid

    os.kill(serve.child.pid, signal.SIGKILL)

    _eventually(
        lambda: _gone(model_pid), within=GONE_WITHIN_SECONDS, what="the scripted model exits"
    )
    assert not processes.port_open("127.0.0.1", serve.model_port)


def test_serve_restarts_its_scripted_model_when_it_dies_and_says_so(
    serve_started: Callable[..., RunningServe],
) -> None:
    serve = serve_started()
    first_pid = serve.model_pid()
    assert first_pid is not None

    os.kill(first_pid, signal.SIGKILL)

    second_pid = _eventually(
        lambda: (pid := serve.model_pid()) != first_pid and pid,
        within=RESTARTED_WITHIN_SECONDS,
        what="another scripted model answers",
    )
    assert isinstance(second_pid, int) and _parent(second_pid) == serve.child.pid
    said = "scripted-model exited with status -9; restarting it (1 of 3 within 60 s)"
    assert said in serve.output()
    assert said in (serve.var_dir / "log" / "scripted-model.log").read_text()
    _eventually(
        lambda: "scripted-model is running again" in serve.output(),
        within=5,
        what="serve says the scripted model is back",
    )
    assert serve.child.running()


def test_serve_gives_up_on_a_child_that_keeps_dying_and_says_why(
    serve_started: Callable[..., RunningServe],
) -> None:
    serve = serve_started()
    for _ in range(3):
        killed = serve.model_pid()
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        _eventually(
            lambda killed=killed: serve.model_pid() not in (None, killed),
            within=RESTARTED_WITHIN_SECONDS,
            what="another scripted model answers",
        )

    last_pid = serve.model_pid()
    assert last_pid is not None
    os.kill(last_pid, signal.SIGKILL)

    _eventually(lambda: not serve.child.running(), within=30, what="serve exits")
    assert serve.child.returncode == 1
    output = serve.output()
    assert (
        "CommandError: scripted-model exited with status -9 after 3 restarts within 60 s: "
        "giving up, stopping everything" in output
    )
    # The end of the child's log comes with it.
    assert f"{serve.var_dir / 'log' / 'scripted-model.log'} ends with:" in output
    assert "scripted model listening on" in output.split("ends with:")[-1]


def test_a_scripted_model_an_earlier_serve_left_behind_is_stopped_and_replaced(
    serve_started: Callable[..., RunningServe], tmp_path: Path
) -> None:
    port = processes.free_port()
    launched = subprocess.run(
        [sys.executable, "-c", ORPHAN_LAUNCHER, str(port), str(tmp_path / "orphan.log")],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    orphan_pid = int(launched.stdout)
    try:
        assert processes.port_listener(port) == processes.Listener(
            port, orphan_pid, "scripted-model", orphan=True
        )

        serve = serve_started(model_port=port)

        assert (
            f"scripted-model (pid {orphan_pid}) on port {port}, left by an earlier run: "
            "its parent is gone: stopping it"
        ) in serve.output()
        assert _gone(orphan_pid)
        model_pid = serve.model_pid()
        assert model_pid is not None and _parent(model_pid) == serve.child.pid
    finally:
        if not _gone(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)


def test_a_scripted_model_somebody_else_runs_is_used_and_left_running(
    serve_started: Callable[..., RunningServe],
) -> None:
    port = processes.free_port()
    # Started without config.processes on purpose: nothing marks it as one of ours.
    theirs = subprocess.Popen(
        processes.scripted_model_command(port=port),
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)

        serve = serve_started(model_port=port)
        serve.child.stop()

        assert f"scripted model already listening on 127.0.0.1:{port}: using it" in serve.output()
        assert theirs.poll() is None
        assert processes.port_listener(port) == processes.Listener(port, theirs.pid)
    finally:
        theirs.terminate()
        theirs.wait(timeout=10)
