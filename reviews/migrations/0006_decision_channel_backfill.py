"""Decisions recorded before channels existed: the deadline's, the user's withdrawals, and
the dashboard's (the only place a reviewer could decide)."""

from django.db import migrations


def backfill(apps, schema_editor):
    Approval = apps.get_model("reviews", "Approval")
    decided = Approval.objects.filter(decision_channel="").exclude(status="pending")
    decided.filter(decided_by_system=True).update(decision_channel="deadline")
    decided.filter(status="withdrawn").update(decision_channel="chat")
    decided.update(decision_channel="dashboard")


class Migration(migrations.Migration):

    dependencies = [
        ("reviews", "0005_reviewers_and_channels"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
