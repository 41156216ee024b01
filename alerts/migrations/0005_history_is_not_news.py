"""Data only: rows written before the alert worker existed are history, not news.

Until this release nothing claimed StatusChange, FailoverEvent or refused-grant rows, so an
existing install holds every transition it ever recorded with `processed_at` empty. Without this,
the first run of the worker would mail an alert (and a recovered notice) for each of them.
Rows written after this migration are announced as usual.
"""

from django.db import migrations
from django.utils import timezone


def mark_history_processed(apps, schema_editor):
    now = timezone.now()
    for model in ("StatusChange", "FailoverEvent"):
        apps.get_model("connections", model).objects.filter(processed_at__isnull=True).update(
            processed_at=now
        )
    apps.get_model("connections", "AuthorizationRequest").objects.filter(
        outcome__startswith="account_mismatch", processed_at__isnull=True
    ).update(processed_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0004_rules_channels_notifications"),
        ("connections", "0004_held_grants"),
    ]

    operations = [migrations.RunPython(mark_history_processed, migrations.RunPython.noop)]
