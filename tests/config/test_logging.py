"""What the logs say about expected outcomes: each event once, at a fitting level, with
no traceback for a refusal (the logging configuration as Django applies it)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.utils.log import configure_logging

from tests.factories import auser_create
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Django's default logging, then settings.LOGGING, as a process starts with them;
    the console handler writes here instead of stderr."""
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    output = io.StringIO()
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    for handler in consoles:
        handler.setStream(output)
    try:
        yield output
    finally:
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def _lines(output: io.StringIO) -> list[str]:
    return [line for line in output.getvalue().splitlines() if line.strip()]


async def test_a_403_is_one_line_without_a_traceback(log_output: io.StringIO) -> None:
    outsider = await logged_in(await auser_create())

    assert (await outsider.get("/reviews/")).status_code == 403

    lines = _lines(log_output)
    assert len(lines) == 1, lines
    assert "WARNING django.request Forbidden (Permission denied): /reviews/" in lines[0]


async def test_a_refusal_rendered_for_the_user_is_logged_once_at_info(
    log_output: io.StringIO,
) -> None:
    intruder = await logged_in(await auser_create())

    missing = "/c/00000000-0000-4000-8000-000000000000/"
    assert (await intruder.get(missing)).status_code == 404

    lines = _lines(log_output)
    assert len(lines) == 1, lines
    assert "INFO config.errors GET " + missing in lines[0]
    assert "Traceback" not in "".join(lines)
