"""`bench_users` makes signed-in sessions for the load check: each must open the chat."""

from __future__ import annotations

import io
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_each_session_it_prints_opens_the_chat() -> None:
    # axes's backend comes first and cannot load a user: a session naming it fails (500).
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    out = io.StringIO()
    await sync_to_async(call_command)("bench_users", count=2, stdout=out)
    sessions = json.loads(out.getvalue())
    assert sorted(sessions) == ["bench-0001", "bench-0002"]
    for key in sessions.values():
        client = AsyncClient()
        client.cookies[settings.SESSION_COOKIE_NAME] = key
        response = await client.get("/")
        assert response.status_code == 200
        assert response.context["user"].username.startswith("bench-")
