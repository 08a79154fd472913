"""Registers (or updates, or removes) the Temporal Schedule that deletes conversations older
than CONVERSATION_RETENTION_DAYS. Idempotent: deploys and CI run it every time."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand

from temporal_worker.client import schedules


class Command(BaseCommand):
    help = "Create, update or remove the conversation retention Schedule in Temporal."

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.CONVERSATION_RETENTION_DAYS
        outcome = async_to_sync(schedules.retention_schedule_register)(
            older_than_days=days, task_queue=settings.TEMPORAL_TASK_QUEUE
        )
        if days > 0:
            self.stdout.write(
                f"Retention schedule {outcome}: every day, conversations idle for more than "
                f"{days} days are deleted."
            )
        else:
            self.stdout.write(f"Retention is off (CONVERSATION_RETENTION_DAYS=0): {outcome}.")
