from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts.drills import send_test_alert
from alerts.models import AlertRule, Notification
from alerts.tasks import deliver_alerts


class Command(BaseCommand):
    help = (
        "Alerts. `alerts test RULE` (id or name) sends a test alert through each channel of the "
        "rule now and exits non-zero if any failed (the fire drill; recorded like any "
        "notification). `alerts deliver` runs the alert worker once (what the per-minute task "
        "does)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        test = sub.add_parser("test", help="Send a test alert through a rule's channels.")
        test.add_argument("rule", help="The rule's id or exact name.")
        sub.add_parser("deliver", help="Announce unclaimed rows and retry due notifications.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _test(self, *, rule: str, **_: Any) -> None:
        found = _find_rule(rule)
        notifications = send_test_alert(rule=found, requested_by="manage.py alerts test")
        if not notifications:
            raise CommandError(f"Rule {found.name!r} has no channel to test.")
        for notification in notifications:
            outcome = notification.status
            if notification.error:
                outcome += f": {notification.error}"
            self.stdout.write(f"{notification.channel.name}\t{notification.recipient}\t{outcome}")
        failed = [n for n in notifications if n.status != Notification.Status.SENT]
        if failed:
            raise CommandError(f"{len(failed)} of {len(notifications)} channel(s) failed.")

    def _deliver(self, **_: Any) -> None:
        self.stdout.write(deliver_alerts())


def _find_rule(ref: str) -> AlertRule:
    rules = AlertRule.objects.filter(pk=int(ref)) if ref.isdigit() else None
    if not rules:
        rules = AlertRule.objects.filter(name=ref)
    found = list(rules[:2])
    if not found:
        raise CommandError(f"No alert rule with id or name {ref!r}.")
    if len(found) > 1:
        ids = ", ".join(str(rule.pk) for rule in AlertRule.objects.filter(name=ref))
        raise CommandError(f"Several rules are named {ref!r} (ids {ids}); give the id.")
    return found[0]
