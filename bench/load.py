"""Load check: N users chatting at once through the real web server and websockets,
next to the bare design (bench/bare.py) as the anchor.

Every user is a logged-in aiohttp session with its own conversation and websocket. It
starts the conversation (untimed), then sends `--turns` messages one after another,
each timed from the POST to the final message on its websocket. The scripted model
answers at zero latency, so the figures are the product's own cost. For N = 10, 50
and 200, in four modes, each N on a freshly started stack, the modes of one N run one
after another (bare-stream, embedded, bare, production) so that the anchor and the
product meet the same machine state:

- embedded: `manage.py serve` (daphne with the worker inside, SQLite, in-memory
  channel layer), as `make run` starts it (bench/stack.py);
- production: PostgreSQL, Redis, Temporal, 2 worker processes and 2 daphne web
  processes (scripts/prod_stack.py); user i posts to web i % 2 and watches its
  websocket on the other one, so every turn crosses processes through Redis;
- bare / bare-stream: the design a user would write instead (bench/bare.py): a
  workflow takes the message by Update, one activity calls the model (non-streaming,
  or streaming with the deltas joined) and the reply is the Update's result. A Temporal
  dev server, the scripted model and the bare worker, each a process; each user's turn
  is timed from the Update call to the reply returned. No web server, no database.

Reports turns per second, p50/p95/max latency, turns slower than a minute, errors (must
be zero: a turn refused, lost, or not answered within two minutes) and the peak resident
memory of each process (VmHWM from /proc; for PostgreSQL also the sampled peak of its
backends' summed PSS), and the CPU each process used per timed turn (from the moment
every user is ready to the last answer: setup left out), the load generator included.
Each run times at least `--min-turns` turns (150: at N = 10, 15 per user).
Writes bench/results/load.json and bench/results/load-cpu.png (CPU ms per turn by
process). Not a test: nothing is asserted beyond the exit status (1 when any error
happened).

    .venv/bin/python bench/load.py                       # all four modes, N = 10 50 200
    .venv/bin/python bench/load.py --mode production --users 10 --turns 2
    .venv/bin/python bench/load.py --mode bare-stream --users 10 --turns 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stack import percentile, product_stack  # noqa: E402

from bench.bare import bare_stack, run_bare_users  # noqa: E402
from scripts.chat_client import ChatClient, ChatError  # noqa: E402
from scripts.prod_stack import production_stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LOAD_GENERATOR = "load generator"
SERVER_TOTAL = "total (server side)"
SETUP_CONCURRENCY = 25
# An error is a turn that fails or is not answered within this long: a user gives up.
# Slower answers that do arrive count as slow (and show in p95 and max), not as errors.
TURN_TIMEOUT_SECONDS = 120.0
SLOW_SECONDS = 60.0
# The client's own limit on one step, above every timeout it sets on the way.
WATCHDOG_SECONDS = 3 * TURN_TIMEOUT_SECONDS
SAMPLE_EVERY_SECONDS = 0.5
# --logs DIR: where production mode copies every process's log after each run.
LOGS_DIR: Path | None = None


# --- memory ---------------------------------------------------------------------


def _status_kb(pid: int, field_name: str, source: str = "status") -> int:
    """A "Name: N kB" field of /proc/<pid>/status (or smaps_rollup); 0 when gone."""
    try:
        with open(f"/proc/{pid}/{source}") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                after_name = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(after_name[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children_by_parent()
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class MemoryWatch:
    """Peak memory of named processes: the kernel's VmHWM for each, and for those
    marked as trees (PostgreSQL) a sampled peak of the summed PSS of the process and
    all its descendants (PSS shares shared memory out, so the sum is not inflated)."""

    def __init__(
        self, processes: dict[str, int], trees: set[str] | frozenset[str] = frozenset()
    ) -> None:
        self.processes = processes
        self.trees = trees
        self.tree_peak_kb: dict[str, int] = dict.fromkeys(trees, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._cpu_go: dict[str, float] | None = None
        self._cpu_end: dict[str, float] | None = None

    def __enter__(self) -> MemoryWatch:
        self.cpu_start = self._cpu_seconds()
        self._thread.start()
        return self

    def _cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each named process and its descendants, except
        descendants named themselves (serve starts Temporal and the model: each counts
        once, under its own name). The load generator's own CPU under LOAD_GENERATOR."""
        ticks = os.sysconf("SC_CLK_TCK")
        tree = _children_by_parent()
        named = set(self.processes.values())
        used: dict[str, float] = {}
        for name, pid in self.processes.items():
            total, todo = 0, [pid]
            while todo:
                p = todo.pop()
                todo.extend(c for c in tree.get(p, []) if c not in named)
                try:
                    with open(f"/proc/{p}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])
                except (OSError, IndexError, ValueError):
                    pass
            used[name] = total / ticks
        used[LOAD_GENERATOR] = time.process_time()
        return used

    def mark_go(self) -> None:
        self._cpu_go = self._cpu_seconds()

    def mark_end(self) -> None:
        self._cpu_end = self._cpu_seconds()

    def cpu_ms_per_turn(self, turns: int) -> dict[str, float]:
        """CPU ms per timed turn of each process, between mark_go and mark_end, and the
        sum of the server side (everything but the load generator)."""
        go, end = self._cpu_go, self._cpu_end
        if not turns or go is None or end is None:
            return {}
        per_turn = {name: round((end[name] - go.get(name, 0.0)) * 1000 / turns, 1) for name in end}
        per_turn[SERVER_TOTAL] = round(
            sum(ms for name, ms in per_turn.items() if name != LOAD_GENERATOR), 1
        )
        return per_turn

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds each process (with its children) used since the watch started."""
        now = self._cpu_seconds()
        now.pop(LOAD_GENERATOR)  # reported on its own, as client_cpu_seconds
        return {name: round(now[name] - self.cpu_start.get(name, 0.0), 1) for name in now}

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name in self.trees:
                pid = self.processes[name]
                total = sum(_status_kb(p, "Pss", "smaps_rollup") for p in [pid, *descendants(pid)])
                self.tree_peak_kb[name] = max(self.tree_peak_kb[name], total)
            self._stop.wait(SAMPLE_EVERY_SECONDS)

    def peaks_mb(self) -> dict[str, float]:
        peaks = {
            name: round(_status_kb(pid, "VmHWM") / 1024, 1) for name, pid in self.processes.items()
        }
        for name, kb in self.tree_peak_kb.items():
            peaks[f"{name}+backends (PSS)"] = round(kb / 1024, 1)
        return peaks


# --- the users ------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    users: int
    turns_per_user: int
    turns: int = 0
    seconds: float = 0.0
    turns_per_second: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    # Turns answered, but after more than SLOW_SECONDS.
    slow: int = 0
    setup_seconds: float = 0.0
    catch_up_misses: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    # CPU seconds each process used during the run (setup included), children included,
    # and what this load generator itself used (it shares the machine).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0
    # CPU ms per timed turn (setup left out) of each process, the load generator
    # included, and SERVER_TOTAL: all but the load generator.
    cpu_ms_per_turn: dict[str, float] = field(default_factory=dict)


async def run_users(
    *,
    mode: str,
    sessions: list[str],
    web_urls: list[str],
    behind_proxy: bool,
    turns: int,
    on_go: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> RunResult:
    result = RunResult(mode=mode, users=len(sessions), turns_per_user=turns)
    latencies: list[float] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    # Everyone has a conversation and an open socket (or failed trying) before the clock
    # starts.
    ready_count = 0
    all_ready = asyncio.Event()
    go = asyncio.Event()

    def ready() -> None:
        nonlocal ready_count
        ready_count += 1
        if ready_count == len(sessions):
            all_ready.set()

    clients = [
        ChatClient(
            web_urls, behind_proxy=behind_proxy, session_key=key, timeout=TURN_TIMEOUT_SECONDS
        )
        for key in sessions
    ]

    def record_error(where: str, err: BaseException) -> None:
        errors.append(f"{where}: {type(err).__name__}: {err}"[:300])

    async def user(index: int, client: ChatClient) -> None:
        web_http = web_urls[index % len(web_urls)]
        web_ws = web_urls[(index + 1) % len(web_urls)]
        try:
            async with gate, asyncio.timeout(WATCHDOG_SECONDS):
                conversation_id, socket = await client.first_turn(
                    web_http, web_ws, f"load user {index} says hello"
                )
        except Exception as err:
            record_error(f"user {index} setup", _hung(err))
            ready()
            return
        try:
            ready()
            await go.wait()  # the socket's reader answers pings meanwhile
            for turn in range(turns):
                try:
                    async with asyncio.timeout(WATCHDOG_SECONDS):
                        done = await client.turn(
                            web_http, socket, conversation_id, f"user {index} turn {turn}"
                        )
                except Exception as err:
                    record_error(f"user {index} turn {turn}", _hung(err))
                    return
                latencies.append(done.seconds)
        finally:
            with contextlib.suppress(Exception):
                await socket.close()

    setup_started = time.perf_counter()
    client_cpu = time.process_time()
    tasks = [asyncio.create_task(user(i, c)) for i, c in enumerate(clients)]
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _tasks_dump)
    watch = asyncio.create_task(_progress(lambda: ready_count, len(sessions), latencies, errors))
    await all_ready.wait()
    started = time.perf_counter()
    if on_go is not None:
        on_go()
    go.set()
    result.setup_seconds = round(started - setup_started, 1)
    await asyncio.gather(*tasks)
    result.seconds = round(time.perf_counter() - started, 2)
    if on_end is not None:
        on_end()
    result.client_cpu_seconds = round(time.process_time() - client_cpu, 1)
    watch.cancel()
    for client in clients:
        result.catch_up_misses += client.catch_up_misses
        await client.close()

    result.turns = len(latencies)
    result.errors = len(errors)
    result.error_samples = errors[:5]
    if latencies:
        result.turns_per_second = round(len(latencies) / result.seconds, 1)
        result.p50_ms = round(statistics.median(latencies) * 1000, 1)
        result.p95_ms = round(percentile(latencies, 0.95) * 1000, 1)
        result.max_ms = round(max(latencies) * 1000, 1)
        result.slow = sum(1 for seconds in latencies if seconds > SLOW_SECONDS)
    return result


async def _progress(
    ready: Callable[[], int], users: int, latencies: list[float], errors: list[str]
) -> None:
    """A line every 15 s while a run is slow, so a stall shows where it is."""
    while True:
        await asyncio.sleep(15)
        print(
            f"  … {ready()}/{users} users ready, {len(latencies)} turns, {len(errors)} errors",
            flush=True,
        )


def _hung(err: BaseException) -> BaseException:
    if isinstance(err, TimeoutError) and not str(err):
        return ChatError(f"no result within the {WATCHDOG_SECONDS:.0f}s watchdog")
    return err


def _tasks_dump() -> None:
    """`kill -USR1 <pid>`: print where every task waits, following the await chain."""
    for task in asyncio.all_tasks():
        chain = []
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        print(f"task {task.get_name()}: {' → '.join(chain)}")
    sys.stdout.flush()


# --- the modes --------------------------------------------------------------------


@contextmanager
def embedded(users: int) -> Iterator[tuple[list[str], list[str], bool, dict[str, int], set[str]]]:
    with product_stack(chunk_delay_ms=0, extra_env={"LOG_LEVEL": "ERROR"}) as running:
        sessions = _sessions(running.env, users)
        serve_pid = next(p for p in descendants(os.getpid()) if "manage.py serve" in _cmdline(p))
        drain = _serve_output_drain(serve_pid, users)
        processes = {"web+worker (serve)": serve_pid}
        for pid in descendants(serve_pid):
            line = _cmdline(pid)
            if "start-dev" in line:
                processes["temporal"] = pid
            elif "scripted_model" in line:
                processes["scripted model"] = pid
        try:
            yield [running.base_url], sessions, False, processes, set()
        finally:
            if drain is not None:
                drain.join(timeout=0)


def _serve_output_drain(pid: int, users: int) -> threading.Thread | None:
    """Read `manage.py serve`'s output, which bench/stack.py pipes but never reads.

    Once ~64 KB of warnings fill that pipe, serve's next log line blocks its event loop
    for good (every answer stalls). The lines go to LOGS_DIR/embedded-N/serve.log.
    """
    import gc
    import subprocess

    proc = next(
        (
            o
            for o in gc.get_objects()
            if isinstance(o, subprocess.Popen) and o.pid == pid and o.stdout is not None
        ),
        None,
    )
    if proc is None or proc.stdout is None:
        return None
    output = proc.stdout
    target = LOGS_DIR / f"embedded-{users}" / "serve.log" if LOGS_DIR else None

    def copy() -> None:
        sink = None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            sink = target.open("w")
        try:
            for line in output:
                if sink is not None:
                    sink.write(line)
        except (OSError, ValueError):
            pass
        finally:
            if sink is not None:
                sink.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


@contextmanager
def production(users: int) -> Iterator[tuple[list[str], list[str], bool, dict[str, int], set[str]]]:
    logs = LOGS_DIR / f"production-{users}" if LOGS_DIR else None
    with production_stack(
        workers=2, webs=2, chunk_delay_ms=0, extra_env={"LOG_LEVEL": "WARNING"}, logs_to=logs
    ) as running:
        sessions = _sessions(running.env, users)
        processes = {c.name: c.pid for c in running.children}
        yield running.web_urls, sessions, True, processes, {"postgres"}


def _sessions(env: dict[str, str], users: int) -> list[str]:
    import subprocess

    output = subprocess.run(
        [sys.executable, "manage.py", "bench_users", "--count", str(users), "--prefix", "load-"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return list(json.loads(output).values())


def bare(_users: int) -> Any:
    return bare_stack()


MODES: dict[str, Callable[[int], Any]] = {
    "embedded": embedded,
    "production": production,
    "bare": bare,
    "bare-stream": bare,
}
BARE_MODES = {"bare": False, "bare-stream": True}  # mode -> streaming
# With --mode all, each N runs these one after another; the anchor first and between.
ALL_MODES = ["bare-stream", "embedded", "bare", "production"]


def run(mode: str, users: int, turns: int) -> RunResult:
    if mode in BARE_MODES:
        return run_bare(mode, users, turns)
    with MODES[mode](users) as (web_urls, sessions, behind_proxy, processes, trees):
        with MemoryWatch(processes, trees) as memory:
            result = asyncio.run(
                run_users(
                    mode=mode,
                    sessions=sessions,
                    web_urls=web_urls,
                    behind_proxy=behind_proxy,
                    turns=turns,
                    on_go=memory.mark_go,
                    on_end=memory.mark_end,
                )
            )
            result.peak_rss_mb = memory.peaks_mb()
            result.cpu_seconds = memory.cpu_used()
            result.cpu_ms_per_turn = memory.cpu_ms_per_turn(result.turns)
    return result


def run_bare(mode: str, users: int, turns: int) -> RunResult:
    with MODES[mode](users) as stack, MemoryWatch(stack.processes) as memory:
        figures = asyncio.run(
            run_bare_users(
                stack.address,
                stack.task_queue,
                users,
                turns,
                BARE_MODES[mode],
                on_go=memory.mark_go,
                on_end=memory.mark_end,
            )
        )
        result = RunResult(mode=mode, users=users, turns_per_user=turns, **figures)
        result.peak_rss_mb = memory.peaks_mb()
        result.cpu_seconds = memory.cpu_used()
        result.cpu_ms_per_turn = memory.cpu_ms_per_turn(result.turns)
    return result


def print_table(results: list[RunResult]) -> None:
    header = (
        f"{'mode':<11}{'N':>5}{'turns':>7}{'turns/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'max ms':>9}{'> 60 s':>8}{'errors':>8}  peak RSS MB per process"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        memory = ", ".join(f"{name} {mb:g}" for name, mb in r.peak_rss_mb.items())
        print(
            f"{r.mode:<11}{r.users:>5}{r.turns:>7}{r.turns_per_second:>9}{r.p50_ms:>9}"
            f"{r.p95_ms:>9}{r.max_ms:>9}{r.slow:>8}{r.errors:>8}  {memory}"
        )
        cpu = ", ".join(f"{name} {seconds:g}" for name, seconds in r.cpu_seconds.items())
        print(
            f"{'':>11}setup {r.setup_seconds} s, run {r.seconds} s; CPU s: {cpu}, "
            f"load generator {r.client_cpu_seconds}"
        )
        if r.cpu_ms_per_turn:
            per_turn = ", ".join(f"{name} {ms:g}" for name, ms in r.cpu_ms_per_turn.items())
            print(f"{'':>11}CPU ms per timed turn: {per_turn}")
        if r.catch_up_misses:
            print(f"{'':>11}late sockets that missed a finished reply: {r.catch_up_misses}")
        for sample in r.error_samples:
            print(f"{'':>11}error: {sample}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--turns", type=int, default=3, help="timed messages per user")
    parser.add_argument(
        "--min-turns",
        type=int,
        default=150,
        help="at least this many timed turns per run (more per user at small N)",
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all", "both"],
        default="all",
        help="all: the four modes interleaved per N; both: embedded and production only",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "load.json")
    parser.add_argument(
        "--plot", type=Path, help="CPU per turn chart (default: beside --output, *-cpu.png)"
    )
    parser.add_argument("--logs", type=Path, help="keep production-mode process logs here")
    args = parser.parse_args()
    global LOGS_DIR
    LOGS_DIR = args.logs

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # sockets: 2+ per user
    modes = {"all": ALL_MODES, "both": ["embedded", "production"]}.get(args.mode, [args.mode])
    results: list[RunResult] = []
    started = time.monotonic()
    for users in args.users:
        # 10 users x 3 turns took under two seconds: the CPU per turn of so short a run is
        # mostly its start (first renders, caches, connections), not the steady cost.
        turns = max(args.turns, math.ceil(args.min_turns / users))
        for mode in modes:
            print(f"{mode}: {users} users x {turns} turns ...", flush=True)
            results.append(run(mode, users, turns))
            print_table(results[-1:])
    print()
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "loadavg_end": os.getloadavg()[0],
                },
                "turns_per_user": args.turns,
                "min_turns": args.min_turns,
                "seconds": round(time.monotonic() - started, 1),
                "runs": [asdict(r) for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    plot = args.plot or args.output.with_name(f"{args.output.stem}-cpu.png")
    from bench.report import plot_load_cpu

    plot_load_cpu([asdict(r) for r in results], plot)
    print(f"\nwrote {args.output} and {plot}")
    sys.exit(1 if any(r.errors for r in results) else 0)


if __name__ == "__main__":
    main()
