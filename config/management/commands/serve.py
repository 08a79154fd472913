"""`manage.py serve`: the whole product in one command (what `make run` and browser tests use).

Starts the Temporal dev server and the scripted model as child processes (or uses the
ones somebody else runs), then serves the ASGI app with daphne in this process, with the
Temporal worker on daphne's event loop so it shares the in-memory channel layer with
the websockets.

The children live as long as serve: one that exits is started again (3 times a minute
at most; then serve stops, naming it and quoting its log), a `kill -9` of serve takes
them along (Linux), and one that an earlier serve left running on our port is stopped
before ours starts.
"""

# daphne.server installs Twisted's asyncio reactor: it must be imported before Twisted.
import daphne.server  # noqa: F401

# isort: split

import asyncio
import logging
import signal
from dataclasses import dataclass
from types import FrameType
from typing import Any

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from twisted.internet import defer, reactor

from config import processes

logger = logging.getLogger(__name__)

DEMO_ACCOUNTS = "demo accounts: alice / rita (reviewer) / admin — password: {password}"
START_TIMEOUT_SECONDS = 30.0
WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024
# A child that exits is started again this often within the window, then serve gives up.
CHILD_RESTARTS = 3
CHILD_RESTART_WINDOW_SECONDS = 60.0


@dataclass
class EmbeddedWorker:
    """The Temporal worker running on daphne's (Twisted's asyncio) event loop."""

    task_queue: str
    worker: Any = None
    task: "asyncio.Task[None] | None" = None

    async def start(self) -> None:
        from temporal_worker.client import get_client
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
        if processes.port_open(host, port):
            raise CommandError(f"{host}:{port} is already in use")
        self.children: list[processes.Child] = []
        self.supervisor: processes.Supervisor | None = None
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
        except processes.StackError as err:
            raise CommandError(str(err)) from err
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
        temporal_host, temporal_port = processes.host_port(settings.TEMPORAL_ADDRESS, 7233)
        embedded_temporal = embedded_temporal and settings.TEMPORAL_EMBEDDED
        if embedded_temporal and not processes.is_loopback(temporal_host):
            self.stdout.write(f"TEMPORAL_ADDRESS {settings.TEMPORAL_ADDRESS} is remote: using it")
            embedded_temporal = False
        # Launched from this (the main) thread: a child dies with the thread that started
        # it, and this one lives as long as serve.
        if settings.SCRIPTED_MODEL:
            self._launch_scripted_model()
        if embedded_temporal:
            self._launch_temporal(temporal_host, temporal_port)
        for child in self.children:
            child.wait_ready()
        if embedded_temporal:
            asyncio.run(self._wait_temporal())
            self._wait_temporal_ui()

    def _launch_temporal(self, host: str, port: int) -> None:
        listener = self._port_claim(host, port)
        if listener is not None:
            self.stdout.write(f"Temporal already listening on {host}:{port}: using it")
            return
        ui_host, ui_port = processes.host_port(settings.TEMPORAL_UI_URL, 8233)
        listener = self._port_claim(ui_host, ui_port)
        if listener is not None:
            raise processes.StackError(
                f"the Temporal UI port {ui_port} is already in use: {listener.describe()}"
            )
        db_path = settings.VAR_DIR / "temporal.db"
        self.stdout.write(f"starting Temporal dev server on {host}:{port} ({db_path})")
        command = processes.temporal_dev_server_command(
            db_path=db_path, ip="127.0.0.1", port=port, ui_port=ui_port
        )
        self._spawn("temporal", command, ready_port=("127.0.0.1", port))

    def _launch_scripted_model(self) -> None:
        port = settings.SCRIPTED_MODEL_PORT
        listener = self._port_claim("127.0.0.1", port)
        if listener is not None:
            self.stdout.write(f"scripted model already listening on 127.0.0.1:{port}: using it")
            return
        self.stdout.write(f"starting scripted model on 127.0.0.1:{port}")
        self._spawn(
            "scripted-model",
            processes.scripted_model_command(
                host="127.0.0.1",
                port=port,
                chunk_delay_ms=settings.SCRIPTED_MODEL_CHUNK_DELAY_MS,
                first_token_delay_ms=settings.SCRIPTED_MODEL_FIRST_TOKEN_DELAY_MS,
            ),
            ready_url=f"http://127.0.0.1:{port}/healthz",
        )

    def _port_claim(self, host: str, port: int) -> processes.Listener | None:
        """None when `port` is free for a child of ours, after stopping an orphan that an
        earlier serve left on it; else who listens there (somebody else's server)."""
        if not processes.port_open(host, port):
            return None
        listener = processes.port_listener(port) or processes.Listener(port)
        if not listener.orphan:
            return listener
        self.stdout.write(self.style.WARNING(f"{listener.describe()}: stopping it"))
        processes.orphan_stop(listener)
        return None

    def _spawn(self, name: str, command: list[str], **ready: Any) -> None:
        child = processes.Child(
            name=name,
            command=command,
            log_path=settings.VAR_DIR / "log" / f"{name}.log",
            cwd=settings.BASE_DIR,
            start_timeout=START_TIMEOUT_SECONDS,
            **ready,
        )
        self.children.append(child)
        child.launch()

    async def _wait_temporal(self) -> None:
        try:
            client = await processes.temporal_connect(
                settings.TEMPORAL_ADDRESS,
                namespace=settings.TEMPORAL_NAMESPACE,
                wait_seconds=START_TIMEOUT_SECONDS,
            )
        except processes.StackError as err:
            temporal = next((c for c in self.children if c.name == "temporal"), None)
            if temporal is None:
                raise
            raise processes.StackError(
                f"{err}\n--- {temporal.log_path} ends with:\n{temporal.log_tail()}"
            ) from err
        added = await processes.search_attributes_ensure(client, settings.TEMPORAL_NAMESPACE)
        if added:
            self.stdout.write(f"registered search attributes: {', '.join(added)}")

    def _wait_temporal_ui(self) -> None:
        ui_host, ui_port = processes.host_port(settings.TEMPORAL_UI_URL, 8233)
        try:
            processes.wait_for_port(ui_host, ui_port, timeout=10)
        except processes.StackError:
            self.stdout.write(self.style.WARNING(f"Temporal Web UI not answering on :{ui_port}"))
        else:
            self.stdout.write(f"Temporal Web UI: {settings.TEMPORAL_UI_URL}")

    def _supervise(self, server: Server) -> None:
        """Watch the children while daphne runs; giving up on one stops daphne."""
        if not self.children:
            return

        def give_up(message: str) -> None:
            reactor.callFromThread(self._fail, server, message)

        self.supervisor = processes.Supervisor(
            self.children,
            report=lambda text: self.stdout.write(self.style.WARNING(text)),
            give_up=give_up,
            restarts=CHILD_RESTARTS,
            window=CHILD_RESTART_WINDOW_SECONDS,
        )
        self.supervisor.start()

    def _stop_children(self) -> None:
        if not self.children:
            return
        self.stdout.write(f"stopping {', '.join(c.name for c in self.children)}")
        if self.supervisor is not None:
            self.supervisor.close()
        else:
            processes.stop_all(self.children)

    # --- daphne and the worker ----------------------------------------------

    def _serve(self, host: str, port: int, *, run_worker: bool) -> None:
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from config.asgi import application

        app = ASGIStaticFilesHandler(application) if settings.DEBUG else application
        worker = EmbeddedWorker(task_queue=settings.TEMPORAL_TASK_QUEUE) if run_worker else None

        def ready() -> None:
            self._ready_task = asyncio.ensure_future(self._on_ready(server, worker))
            if worker is not None:
                # Twisted's interface declares the arguments wrongly ("shutdown" is the event).
                reactor.addSystemEventTrigger(
                    "before",
                    "shutdown",  # type: ignore[arg-type]
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
        self._supervise(server)
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
        self.failure = self.failure or message
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
            "  " + DEMO_ACCOUNTS.format(password=settings.DEMO_PASSWORD),
            "  Ctrl-C stops everything.",
            "",
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
