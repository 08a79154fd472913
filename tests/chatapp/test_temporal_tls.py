"""Mutual TLS to Temporal, for real: a TLS terminator that demands a client certificate
stands in front of the dev server, with certificates made by openssl for the test."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from django.core.exceptions import ImproperlyConfigured
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import temporal_client_profile
from temporal_worker.client.connection import connect_config


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA, a server certificate for localhost and a client certificate, all signed by it."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem", cwd=folder,
    )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder,
        )  # fmt: skip
        (folder / f"{name}.ext").write_text(extension + "\n")
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=folder,
        )  # fmt: skip


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


@pytest_asyncio.fixture
async def mtls_address(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.pem")
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
    context.set_alpn_protocols(["h2"])
    upstream_host, upstream_port = temporal_env.client.service_client.config.target_host.rsplit(
        ":", 1
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()


def _use(settings: object, **environ: str) -> None:
    """Point the Temporal client at `environ`, read the way settings read the real one."""
    settings.TEMPORAL_CLIENT_PROFILE = temporal_client_profile(environ)  # type: ignore[attr-defined]
    settings.TEMPORAL_ADDRESS = environ["TEMPORAL_ADDRESS"]  # type: ignore[attr-defined]


@pytest.fixture
def mtls_environ(mtls_address: str, tmp_path: Path) -> dict[str, str]:
    # The names this product used before the SDK's: settings map them onto the SDK's.
    return {
        "TEMPORAL_ADDRESS": mtls_address,
        "TEMPORAL_TLS": "true",
        "TEMPORAL_TLS_CLIENT_CERT": str(tmp_path / "client.pem"),
        "TEMPORAL_TLS_CLIENT_KEY": str(tmp_path / "client.key"),
        "TEMPORAL_TLS_SERVER_CA": str(tmp_path / "ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }


async def _namespace_seen() -> bool:
    client = await Client.connect(**connect_config())
    return (await client.count_workflows()).count >= 0


async def test_a_client_certificate_reaches_temporal_through_mutual_tls(
    mtls_environ: dict[str, str], settings: object
) -> None:
    _use(settings, **mtls_environ)
    assert await _namespace_seen()


async def test_the_sdk_variable_names_work_too(
    mtls_environ: dict[str, str], settings: object, tmp_path: Path
) -> None:
    _use(
        settings,
        TEMPORAL_ADDRESS=mtls_environ["TEMPORAL_ADDRESS"],
        TEMPORAL_TLS_CLIENT_CERT_PATH=str(tmp_path / "client.pem"),
        TEMPORAL_TLS_CLIENT_KEY_PATH=str(tmp_path / "client.key"),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(tmp_path / "ca.pem"),
        TEMPORAL_TLS_SERVER_NAME="localhost",
    )
    assert await _namespace_seen()


async def test_without_the_client_certificate_the_connection_is_refused(
    mtls_environ: dict[str, str], settings: object
) -> None:
    del mtls_environ["TEMPORAL_TLS_CLIENT_CERT"], mtls_environ["TEMPORAL_TLS_CLIENT_KEY"]
    _use(settings, **mtls_environ)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(_namespace_seen(), timeout=30)


def test_half_a_certificate_or_a_missing_file_is_a_clear_configuration_error(
    settings: object, tmp_path: Path
) -> None:
    _certificates(tmp_path)
    _use(
        settings,
        TEMPORAL_ADDRESS="127.0.0.1:7233",
        TEMPORAL_TLS="true",
        TEMPORAL_TLS_CLIENT_CERT=str(tmp_path / "client.pem"),
    )
    with pytest.raises(ImproperlyConfigured, match="both TEMPORAL_TLS_CLIENT_CERT_PATH"):
        connect_config()
    _use(
        settings,
        TEMPORAL_ADDRESS="127.0.0.1:7233",
        TEMPORAL_TLS_CLIENT_CERT=str(tmp_path / "client.pem"),
        TEMPORAL_TLS_CLIENT_KEY=str(tmp_path / "missing.key"),
    )
    with pytest.raises(ImproperlyConfigured, match=r"cannot read .*missing\.key"):
        connect_config()
