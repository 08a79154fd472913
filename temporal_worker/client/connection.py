"""Connecting to Temporal with the SDK's own configuration (settings.TEMPORAL_CLIENT_PROFILE)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import stamina
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from temporal_worker.telemetry import temporal_runtime, tracing_on

logger = logging.getLogger(__name__)

_clients: dict[int, Client] = {}


def connect_config() -> dict[str, Any]:
    """`Client.connect` keyword arguments; a missing certificate file names its variable."""
    profile = settings.TEMPORAL_CLIENT_PROFILE
    try:
        config: dict[str, Any] = dict(profile.to_client_connect_config())
    except OSError as err:
        raise ImproperlyConfigured(
            f"Temporal TLS: cannot read {err.filename}: {err.strerror} "
            "(TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH)"
        ) from err
    tls = config.get("tls")
    if tls is not None and not isinstance(tls, bool):
        if bool(tls.client_cert) != bool(tls.client_private_key):
            raise ImproperlyConfigured(
                "Set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, "
                "or neither."
            )
    config["target_host"] = settings.TEMPORAL_ADDRESS
    config["namespace"] = settings.TEMPORAL_NAMESPACE
    if tracing_on():
        # Spans for the client's calls, carried in Temporal headers to the workflow and its
        # activities; a worker built on this client traces too. Off: no interceptor at all.
        config["interceptors"] = [TracingInterceptor()]
    runtime = temporal_runtime()
    if runtime is not None:
        config["runtime"] = runtime
    return config


async def get_client() -> Client:
    """A client per event loop (the web server has one; tests may have several)."""
    loop_key = id(asyncio.get_running_loop())
    client = _clients.get(loop_key)
    if client is None:
        client = await Client.connect(**connect_config())
        _clients[loop_key] = client
    return client


def set_client(client: Client) -> None:
    """Share an already connected client (the embedded worker and tests use this)."""
    _clients[id(asyncio.get_running_loop())] = client


async def connect_when_up(wait_seconds: float) -> Client:
    """Connect, trying again while Temporal is not up yet (a fresh deployment starts its
    workers before or with Temporal), for up to `wait_seconds`."""
    async for attempt in stamina.retry_context(
        on=_connection_failed, attempts=None, timeout=wait_seconds, wait_initial=0.5
    ):
        with attempt:
            if attempt.num > 1:
                logger.warning(
                    "Temporal at %s not reachable; attempt %d",
                    settings.TEMPORAL_ADDRESS,
                    attempt.num,
                )
            return await get_client()
    raise AssertionError("unreachable: stamina re-raises the last error")


def _connection_failed(err: Exception) -> bool:
    return isinstance(err, RuntimeError | ConnectionError | TimeoutError)
