from typing import Any

from django.core.management.base import BaseCommand

from alerts.defaults import ensure_default_alerts


class Command(BaseCommand):
    help = (
        "Declare the default alerting (idempotent; setup_schedules runs it): every event by email "
        "to TOKENADMIN_ALERT_EMAILS and to each connection's owner contact, and the reminder rule "
        "'days_until_expiry <= 10'. Existing defaults keep an admin's edits; disable a default "
        "rule rather than delete it, or the next run declares it again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(ensure_default_alerts().summary())
