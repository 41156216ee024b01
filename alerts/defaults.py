"""The alerting a fresh install has without admin work: every event, by email, to the addresses
in TOKENADMIN_ALERT_EMAILS and to each connection's owner contact; plus the classic reminder
rule `days_until_expiry <= 10`.

Idempotent, like `setup_schedules` (which runs it): defaults are found by name and created only
when missing, so an admin's edits (other channels, conditions, a disabled rule) are kept. The
addresses of the TOKENADMIN_ALERT_EMAILS channel follow the setting whenever it is set: edit the
setting, not that channel. A deleted default rule comes back on the next run; disable it instead.
"""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models, transaction

from alerts.models import AlertRule, Channel, Event

ALERT_EMAILS_CHANNEL = "Alert emails (TOKENADMIN_ALERT_EMAILS)"
OWNER_CHANNEL = "Connection owner contact"
RULE_NAME = "Default: {label}"
REMINDER_RULE = "Default: reauthorize-by within 10 days"
REMINDER_CONDITION = "days_until_expiry <= 10"


@dataclass
class DefaultsReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.created and not self.updated:
            return "alert defaults: in place"
        parts = [f"added {name}" for name in self.created]
        parts += [f"updated {name}" for name in self.updated]
        return "alert defaults: " + "; ".join(parts)


def ensure_default_alerts() -> DefaultsReport:
    report = DefaultsReport()
    with transaction.atomic():
        owner, created = _first_or_create(
            Channel,
            name=OWNER_CHANNEL,
            defaults={"kind": Channel.Kind.EMAIL, "to_connection_contact": True},
        )
        if created:
            report.created.append(f"channel {owner.name!r}")
        admins, admins_created = _alert_emails_channel(report)
        wanted = [(RULE_NAME.format(label=event.label), event.value, "") for event in Event] + [
            (REMINDER_RULE, Event.EXPIRY_WARNING.value, REMINDER_CONDITION)
        ]
        for name, event, condition in wanted:
            rule, created = _first_or_create(
                AlertRule, name=name, defaults={"event": event, "condition": condition}
            )
            if created:
                rule.channels.set([c for c in (owner, admins) if c is not None])
                report.created.append(f"rule {name!r}")
            elif admins_created:
                # The setting was given after the first install: tell those addresses too.
                rule.channels.add(admins)
    return report


def _alert_emails_channel(report: DefaultsReport) -> tuple[Channel | None, bool]:
    addresses = "\n".join(settings.TOKENADMIN["ALERT_EMAILS"])
    channel = Channel.objects.filter(name=ALERT_EMAILS_CHANNEL).order_by("pk").first()
    if not addresses:
        return channel, False
    if channel is None:
        channel = Channel.objects.create(
            name=ALERT_EMAILS_CHANNEL, kind=Channel.Kind.EMAIL, email_addresses=addresses
        )
        report.created.append(f"channel {channel.name!r}")
        return channel, True
    if channel.email_addresses != addresses:
        Channel.objects.filter(pk=channel.pk).update(email_addresses=addresses)
        report.updated.append(f"channel {channel.name!r} (addresses from the setting)")
    return channel, False


def _first_or_create(
    model: type[models.Model], *, name: str, defaults: dict[str, Any]
) -> tuple[Any, bool]:
    # Names are not unique in the schema; the oldest of any duplicates is the default.
    existing = model.objects.filter(name=name).order_by("pk").first()
    if existing is not None:
        return existing, False
    return model.objects.create(name=name, **defaults), True
