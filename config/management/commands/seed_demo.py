"""`manage.py seed_demo`: create the demo accounts if they are missing (safe to run again).

alice is an end user, rita a reviewer (member of "Reviewers"), admin a superuser.
Passwords come from settings.DEMO_PASSWORD and are set only on creation.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

REVIEWERS_GROUP = "Reviewers"
REVIEW_PERMISSION = "review_approvals"

# username, is_staff, is_superuser, reviewer
DEMO_USERS: list[tuple[str, bool, bool, bool]] = [
    ("alice", False, False, False),
    ("rita", False, False, True),
    ("admin", True, True, False),
]


class Command(BaseCommand):
    help = "Create the demo accounts alice, rita (reviewer) and admin if they do not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        password = settings.DEMO_PASSWORD
        user_model = get_user_model()
        created: list[str] = []
        with transaction.atomic():
            reviewers, group_created = Group.objects.get_or_create(name=REVIEWERS_GROUP)
            if group_created:
                created.append(f"group {REVIEWERS_GROUP}")
            permission = Permission.objects.filter(codename=REVIEW_PERMISSION).first()
            if permission is not None:
                reviewers.permissions.add(permission)
            for username, is_staff, is_superuser, reviewer in DEMO_USERS:
                user, was_created = user_model.objects.get_or_create(
                    username=username,
                    defaults={
                        "email": f"{username}@example.com",
                        "is_staff": is_staff,
                        "is_superuser": is_superuser,
                    },
                )
                if was_created:
                    user.set_password(password)
                    user.save(update_fields=["password"])
                    created.append(username)
                if reviewer:
                    user.groups.add(reviewers)
        if created:
            self.stdout.write(f"seed_demo: created {', '.join(created)}")
        else:
            self.stdout.write("seed_demo: demo accounts already exist")
        if permission is None:
            self.stdout.write(
                f"seed_demo: no '{REVIEW_PERMISSION}' permission yet; "
                f"{REVIEWERS_GROUP} has no permissions"
            )
