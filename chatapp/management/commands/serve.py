"""`manage.py serve`: the whole product in one command (what `make run` and browser tests use).

Starts (or reuses) the Temporal dev server and the scripted model as child processes,
then serves the ASGI app with daphne in this process, with the Temporal worker on
daphne's event loop so it shares the in-memory channel layer with the websockets.
"""

# daphne.server installs Twisted's asyncio reactor: it must be imported before Twisted.
import daphne.server  # noqa: F401

# isort: split

import asyncio
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from twisted.internet import defer, reactor

from chatapp import stack

logger = logging.getLogger(__name__)

DEMO_ACCOUNTS = "demo accounts: alice / rita (reviewer) / admin — password: {password}"
DEMO_PASSWORD = "demo-pass-123"  # seed_demo's default
START_TIMEOUT_SECONDS = 30.0
WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class EmbeddedWorker:
    """The Temporal worker running on daphne's (Twisted's asyncio) event loop."""

    task_queue: str
    worker: Any = None
    task: "asyncio.Task[None] | None" = None

    async def start(self) -> None:
        from chatapp.temporal_client import get_client
        from temporal_worker.worker import build_worker

        client = await get_client()
        self.worker = build_worker(client, task_queue=self.task_queue)
        self.task = asyncio.ensure_future(self.worker.run())

    async def shutdown(self) -> None:
        if self.worker is None or self.task is None or self.task.done():
            return
        try:
            await self.worker.shutdown()
            await self.task
        except Exception:
            logger.exception("the Temporal worker did not shut down cleanly")


def _env_flag(name: str, default: bool = True) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the app with daphne, the embedded Temporal dev server, worker and scripted model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-temporal",
            action="store_true",
            help="Do not start a Temporal dev server (also: TEMPORAL_EMBEDDED=0).",
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Do not run the Temporal worker in-process."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        if stack.port_open(host, port):
            raise CommandError(f"{host}:{port} is already in use")
        self.children: list[Child] = []
        self.failure: str | None = None
        # Ctrl-C must work even when started in the background by a shell that ignores
        # SIGINT; until Twisted installs its own handlers, SIGTERM unwinds like Ctrl-C.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._start_dependencies(embedded_temporal=not options["no_temporal"])
            run_worker = settings.EMBEDDED_WORKER and not options["no_worker"]
            self._serve(host, port, run_worker=run_worker)
        except KeyboardInterrupt:
            self.stdout.write("interrupted")
        except stack.StackError as err:
            raise CommandError(f"{err}{self._logs_hint()}") from err
        finally:
            # A second Ctrl-C must not abandon half-stopped children (stopping is bounded).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._stop_children()
        if self.failure:
            raise CommandError(self.failure)

    # --- child processes ----------------------------------------------------

    def _start_dependencies(self, *, embedded_temporal: bool) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        temporal_host, temporal_port = stack.host_port(settings.TEMPORAL_ADDRESS, 7233)
        embedded_temporal = embedded_temporal and _env_flag("TEMPORAL_EMBEDDED")
        if embedded_temporal and not stack.is_loopback(temporal_host):
            self.stdout.write(f"TEMPORAL_ADDRESS {settings.TEMPORAL_ADDRESS} is remote: using it")
            embedded_temporal = False

        temporal: Child | None = None
        if embedded_temporal:
            temporal = self._start_temporal(temporal_host, temporal_port)
        model: Child | None = None
        if settings.SCRIPTED_MODEL:
            model = self._start_scripted_model()

        if embedded_temporal:
            asyncio.run(self._wait_temporal(temporal))
        if settings.SCRIPTED_MODEL:
            stack.wait_for_http(
                f"http://127.0.0.1:{settings.SCRIPTED_MODEL_PORT}/healthz",
                timeout=START_TIMEOUT_SECONDS,
                proc=model.proc if model else None,
                what="the scripted model",
            )

    def _start_temporal(self, host: str, port: int) -> Child | None:
        if stack.port_open(host, port):
            self.stdout.write(f"Temporal already listening on {host}:{port}: reusing it")
            return None
        ui_host, ui_port = stack.host_port(settings.TEMPORAL_UI_URL, 8233)
        if stack.port_open(ui_host, ui_port):
            raise stack.StackError(f"the Temporal UI port {ui_port} is already in use")
        db_path = settings.VAR_DIR / "temporal.db"
        self.stdout.write(f"starting Temporal dev server on {host}:{port} ({db_path})")
        command = stack.temporal_dev_server_command(
            db_path=db_path, ip="127.0.0.1", port=port, ui_port=ui_port
        )
        return self._spawn("temporal", command)

    def _start_scripted_model(self) -> Child | None:
        port = settings.SCRIPTED_MODEL_PORT
        if stack.port_open("127.0.0.1", port):
            self.stdout.write(f"scripted model already listening on 127.0.0.1:{port}: reusing it")
            return None
        self.stdout.write(f"starting scripted model on 127.0.0.1:{port}")
        return self._spawn(
            "scripted-model", stack.scripted_model_command(host="127.0.0.1", port=port)
        )

    def _spawn(self, name: str, command: list[str]) -> Child:
        log_path = settings.VAR_DIR / "log" / f"{name}.log"
        proc = stack.process_start(command, log_path=log_path, cwd=settings.BASE_DIR)
        child = Child(name=name, proc=proc, log_path=log_path)
        self.children.append(child)
        return child

    async def _wait_temporal(self, child: Child | None) -> None:
        client = await stack.temporal_connect(
            settings.TEMPORAL_ADDRESS,
            namespace=settings.TEMPORAL_NAMESPACE,
            wait_seconds=START_TIMEOUT_SECONDS,
            proc=child.proc if child else None,
        )
        added = await stack.search_attributes_ensure(client, settings.TEMPORAL_NAMESPACE)
        if added:
            self.stdout.write(f"registered search attributes: {', '.join(added)}")
        ui_host, ui_port = stack.host_port(settings.TEMPORAL_UI_URL, 8233)
        try:
            await asyncio.to_thread(stack.wait_for_port, ui_host, ui_port, timeout=10)
        except stack.StackError:
            self.stdout.write(self.style.WARNING(f"Temporal Web UI not answering on :{ui_port}"))
        else:
            self.stdout.write(f"Temporal Web UI: {settings.TEMPORAL_UI_URL}")

    def _stop_children(self) -> None:
        if not self.children:
            return
        self.stdout.write(f"stopping {', '.join(c.name for c in self.children)}")
        stack.processes_stop([c.proc for c in self.children])
        self.children = []

    def _logs_hint(self) -> str:
        return "".join(
            f"\n--- {c.log_path} (last lines) ---\n{stack.log_tail(c.log_path)}"
            for c in self.children
            if c.proc.poll() is not None
        )

    # --- daphne and the worker ----------------------------------------------

    def _serve(self, host: str, port: int, *, run_worker: bool) -> None:
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from chatapp.asgi import application

        app = ASGIStaticFilesHandler(application) if settings.DEBUG else application
        worker = EmbeddedWorker(task_queue=settings.TEMPORAL_TASK_QUEUE) if run_worker else None

        def ready() -> None:
            self._ready_task = asyncio.ensure_future(self._on_ready(server, worker))
            if worker is not None:
                reactor.addSystemEventTrigger(
                    "before",
                    "shutdown",
                    lambda: defer.Deferred.fromFuture(asyncio.ensure_future(worker.shutdown())),
                )

        server = Server(
            application=app,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            verbosity=0,
            ready_callable=ready,
            # The sockets are server-to-client; nothing a browser sends needs more.
            websocket_max_message_size=WEBSOCKET_MAX_MESSAGE_BYTES,
        )
        server.run()
        if not server.listening_addresses and not self.failure:
            self.failure = f"daphne could not listen on {host}:{port}"

    async def _on_ready(self, server: Server, worker: EmbeddedWorker | None) -> None:
        if worker is not None:
            try:
                await worker.start()
            except Exception as err:
                self._fail(server, f"the Temporal worker did not start: {err}")
                return
            assert worker.task is not None
            worker.task.add_done_callback(lambda task: self._worker_done(server, task))
        self._banner(server, worker_running=worker is not None)

    def _worker_done(self, server: Server, task: "asyncio.Task[None]") -> None:
        if task.cancelled() or task.exception() is None:
            return
        logger.error("the Temporal worker stopped", exc_info=task.exception())
        self._fail(server, f"the Temporal worker stopped: {task.exception()}")

    def _fail(self, server: Server, message: str) -> None:
        self.failure = message
        server.stop()

    def _banner(self, server: Server, *, worker_running: bool) -> None:
        addresses = server.listening_addresses or [("127.0.0.1", 8000)]
        app_host, app_port = addresses[0]
        if settings.SCRIPTED_MODEL:
            llm = f"scripted model (test double) at {settings.OPENAI_BASE_URL}"
        else:
            llm = f"{settings.AGENT_MODEL} at {settings.OPENAI_BASE_URL or 'api.openai.com'}"
        worker = "in-process" if worker_running else "not started here"
        lines = [
            "",
            f"  app:         http://{app_host}:{app_port}/",
            f"  Temporal UI: {settings.TEMPORAL_UI_URL}  ({settings.TEMPORAL_ADDRESS}, "
            f"queue {settings.TEMPORAL_TASK_QUEUE}, worker {worker})",
            f"  LLM:         {llm}",
            "  " + DEMO_ACCOUNTS.format(password=os.environ.get("DEMO_PASSWORD") or DEMO_PASSWORD),
            "  Ctrl-C stops everything.",
            "",
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
