"""`manage.py seed_demo`: create the demo accounts if they are missing (safe to run again).

alice is an end user, rita a reviewer (member of "Reviewers"), admin a superuser.
Passwords come from settings.DEMO_PASSWORD and are set only on creation.

It also seeds two agents: "Shop support" (the shop's built-in tools, preselected) and
"Warehouse", whose tools come from the demo MCP server (shop/mcp_server.py, started by
the worker over stdio); each may hand the conversation to the other. The server's tools
are listed once here, so the warehouse agent has them from the first message.
"""

import sys
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from chatapp.agent_services import agent_save
from chatapp.mcp_catalog import McpServerTable, mcp_server_spec
from chatapp.models import Agent, McpServer, Prompt
from chatapp.prompt_services import prompt_version_activate, prompt_version_create
from chatapp.prompts import AGENT_SYSTEM_PROMPT
from temporal_worker.tools.mcp.connections import mcp_pool_close
from temporal_worker.tools.mcp.refresher import McpCatalogRefresher
from temporal_worker.tools.registry import code_tools

WAREHOUSE = "warehouse"
WAREHOUSE_PROMPT = "warehouse-agent"
WAREHOUSE_PROMPT_TEXT = (
    "You are the warehouse agent of a small online shop. You check stock levels, list and "
    "make reservations of units for orders with the warehouse's tools; reservations wait "
    "for a reviewer's approval. For orders, refunds and emails, hand the conversation to "
    "the shop support agent. Answer concisely in Markdown and never invent stock figures."
)

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
        self._seed_agents()
        if permission is None:
            self.stdout.write(
                f"seed_demo: no '{REVIEW_PERMISSION}' permission yet; "
                f"{REVIEWERS_GROUP} has no permissions"
            )

    def _seed_agents(self) -> None:
        with transaction.atomic():
            server, server_created = McpServer.objects.get_or_create(
                name=WAREHOUSE,
                defaults={
                    "title": "Warehouse",
                    "description": "The demo warehouse (shop/mcp_server.py): stock and "
                    "reservations.",
                    "transport": McpServer.Transport.STDIO,
                    "command": sys.executable,
                    "args": ["-m", "shop.mcp_server", "--data", str(_warehouse_data())],
                    # It keeps each reservation under the call's idempotency key.
                    "idempotent": True,
                    "call_timeout_seconds": 30,
                },
            )
            support_created = self._agent(
                slug="support",
                name="Shop support",
                description="Orders, refunds, emails to customers and the help articles.",
                prompt=Prompt.objects.get(name=AGENT_SYSTEM_PROMPT),
                tools=[tool.name for tool in code_tools(settings.AGENT_TOOL_MODULES)],
                position=0,
                default=True,
            )
            warehouse_created = self._agent(
                slug=WAREHOUSE,
                name="Warehouse",
                description="Stock levels and reservations, from the warehouse's MCP server.",
                prompt=self._warehouse_prompt(),
                tools=[],
                position=1,
            )
            support = Agent.objects.get(slug="support")
            warehouse = Agent.objects.get(slug=WAREHOUSE)
            if warehouse_created:
                warehouse.mcp_servers.add(server)
            if support_created or warehouse_created:
                support.handoffs.add(warehouse)
                warehouse.handoffs.add(support)
        made = [
            label
            for label, was_made in (
                ("agent support", support_created),
                ("agent warehouse", warehouse_created),
                ("MCP server warehouse", server_created),
            )
            if was_made
        ]
        self.stdout.write(
            f"seed_demo: created {', '.join(made)}"
            if made
            else "seed_demo: demo agents already exist"
        )
        if not server.tools:
            self._list_tools(server)

    def _agent(self, *, slug: str, default: bool = False, **fields: Any) -> bool:
        if Agent.objects.filter(slug=slug).exists():
            return False
        agent = Agent(
            slug=slug,
            name=fields["name"],
            description=fields["description"],
            prompt=fields["prompt"],
            tools=fields["tools"],
            position=fields["position"],
            is_default=default and not Agent.objects.filter(is_default=True).exists(),
        )
        agent_save(agent=agent)
        return True

    def _warehouse_prompt(self) -> Prompt:
        prompt, _ = Prompt.objects.get_or_create(
            name=WAREHOUSE_PROMPT, defaults={"description": "The warehouse agent's system prompt"}
        )
        if not prompt.versions.exists():
            version = prompt_version_create(
                prompt=prompt, text=WAREHOUSE_PROMPT_TEXT, note="Seeded by seed_demo"
            )
            prompt_version_activate(version=version)
        return prompt

    def _list_tools(self, server: McpServer) -> None:
        """Start the demo server once and keep its tool list (the worker refreshes it)."""

        async def listed() -> str:
            try:
                refresher = McpCatalogRefresher(McpServerTable(), poll_seconds=0)
                listing = await refresher.refresh(mcp_server_spec(server))
            finally:
                await mcp_pool_close()
            return f"{listing.tools} tools" if listing.ok else f"not listed ({listing.error})"

        self.stdout.write(f"seed_demo: MCP server {server.name}: {async_to_sync(listed)()}")


def _warehouse_data() -> Path:
    """The demo warehouse's file, beside the SQLite database (a test's own database gets
    its own warehouse), else in VAR_DIR."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return Path(str(database["NAME"])).with_name("warehouse.sqlite3")
    return Path(settings.VAR_DIR) / "warehouse.sqlite3"
