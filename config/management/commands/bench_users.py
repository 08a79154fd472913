"""`manage.py bench_users --count N`: N end users for a load test, each with a live session.

Prints one JSON object, {"username": "session key", ...}. The sessions are made here
rather than by logging in N times, because each password check costs a deliberate
fraction of a second of CPU (that is what a password hash is for) and would measure
the hasher, not the chat. The users get an unusable password: they can only be used
through these sessions. Running it again reuses the users and makes fresh sessions.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils.module_loading import import_string

DEFAULT_BACKEND = "django.contrib.auth.backends.ModelBackend"


class Command(BaseCommand):
    help = "Create N load-test users (bench-0001 ...) and print a session key for each as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--prefix", default="bench-")

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        prefix: str = options["prefix"]
        user_model = get_user_model()
        store_class = import_string(settings.SESSION_ENGINE + ".SessionStore")
        # The first backend that loads users (axes's only refuses logins, it has no get_user).
        backend = next(
            path
            for path in [*settings.AUTHENTICATION_BACKENDS, DEFAULT_BACKEND]
            if hasattr(import_string(path), "get_user")
        )
        names = [f"{prefix}{index:04d}" for index in range(1, count + 1)]
        with transaction.atomic():
            existing = set(
                user_model.objects.filter(username__in=names).values_list("username", flat=True)
            )
            new_users = []
            for name in names:
                if name not in existing:
                    user = user_model(username=name, email=f"{name}@bench.example")
                    user.set_unusable_password()
                    new_users.append(user)
            user_model.objects.bulk_create(new_users)
            sessions: dict[str, str] = {}
            for user in user_model.objects.filter(username__in=names).order_by("username"):
                store = store_class()
                store[SESSION_KEY] = user._meta.pk.value_to_string(user)
                store[BACKEND_SESSION_KEY] = backend
                store[HASH_SESSION_KEY] = user.get_session_auth_hash()
                store.create()
                sessions[user.username] = store.session_key
        self.stdout.write(json.dumps(sessions))
