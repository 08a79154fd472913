"""Start the whole product (`manage.py serve`) in an isolated folder for a benchmark."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.processes import Child, free_ports  # noqa: E402

PASSWORD = "bench-pass-123"


@dataclass
class Stack:
    base_url: str
    temporal_address: str
    model_url: str
    env: dict[str, str]


@contextmanager
def product_stack(
    *, chunk_delay_ms: int = 0, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """The embedded stack on free ports, with its own databases; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-") as var_dir:
        names = ("web", "temporal", "ui", "model")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        env = {
            **os.environ,
            "VAR_DIR": var_dir,
            "DEBUG": "True",
            "DEMO_PASSWORD": PASSWORD,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
            "TEMPORAL_UI_URL": f"http://127.0.0.1:{ports['ui']}",
            "SCRIPTED_MODEL_PORT": str(ports["model"]),
            "SCRIPTED_MODEL_CHUNK_DELAY_MS": str(chunk_delay_ms),
            "LOG_LEVEL": "WARNING",
            "CHAT_RATE_LIMIT_MESSAGES": "0",
            "OPENAI_API_KEY": "",
            **(extra_env or {}),
        }
        python = sys.executable
        for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
            subprocess.run(
                [python, "manage.py", *command],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        base_url = f"http://127.0.0.1:{ports['web']}"
        # Its output goes to a file: a pipe nobody reads would fill up and block serve.
        serve = Child(
            name="serve",
            command=[python, "manage.py", "serve", "--port", str(ports["web"])],
            log_path=Path(var_dir) / "log" / "serve.log",
            cwd=ROOT,
            env=env,
            ready_url=f"{base_url}/healthz",
            start_timeout=60,
            # Ctrl-C: serve stops its worker and children in order.
            stop_signal=signal.SIGINT,
            stop_timeout=30,
        )
        try:
            serve.start()
            yield Stack(
                base_url=base_url,
                temporal_address=env["TEMPORAL_ADDRESS"],
                model_url=f"http://127.0.0.1:{ports['model']}",
                env=env,
            )
        finally:
            serve.stop()


CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HIDDEN_RE = re.compile(r'name="(conversation_id|message_id)" value="([^"]+)"')


async def logged_in_session(base_url: str, username: str = "alice") -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get("/accounts/login/") as response:
        token = CSRF_RE.search(await response.text()).group(1)  # type: ignore[union-attr]
    async with session.post(
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        allow_redirects=False,
    ) as response:
        assert response.status == 302, f"login failed: {response.status}"
    return session


def csrf_token(session: aiohttp.ClientSession) -> str:
    for cookie in session.cookie_jar:
        if cookie.key == "csrftoken":
            return cookie.value
    raise RuntimeError("no CSRF cookie")


def form_ids(html: str) -> dict[str, str]:
    return dict(HIDDEN_RE.findall(html))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def now() -> float:
    return time.perf_counter()
