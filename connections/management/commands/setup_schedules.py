from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.models import Schedule


@dataclass(frozen=True)
class Declared:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None
    cron: str | None = None


def declared_schedules() -> list[Declared]:
    cfg = settings.TOKENADMIN
    return [
        Declared(
            "tokenadmin: access-token sweep",
            "connections.tasks.sweep_access_tokens",
            Schedule.MINUTES,
            minutes=max(1, cfg["SWEEP_INTERVAL_SECONDS"] // 60),
        ),
        Declared(
            "tokenadmin: refresh-token renewal",
            "connections.tasks.renew_refresh_tokens",
            Schedule.HOURLY,
        ),
        Declared(
            "tokenadmin: expiry monitor",
            "connections.tasks.monitor_expiry",
            Schedule.CRON,
            cron=cfg["MONITOR_CRON"],
        ),
        Declared(
            "tokenadmin: health checks",
            "connections.tasks.check_all_health",
            Schedule.MINUTES,
            minutes=60 * cfg["HEALTH_CHECK_HOURS"],
        ),
        Declared(
            "tokenadmin: alert delivery", "alerts.tasks.deliver_alerts", Schedule.MINUTES, minutes=1
        ),
        _every(
            "tokenadmin: expiry reminders", "alerts.tasks.send_reminders", cfg["REMINDER_MINUTES"]
        ),
    ]


def _every(name: str, func: str, minutes: int) -> Declared:
    """Hourly when `minutes` is 60 (the default), else every `minutes` (the demo's 1)."""
    if minutes == 60:
        return Declared(name, func, Schedule.HOURLY)
    return Declared(name, func, Schedule.MINUTES, minutes=max(1, minutes))


class Command(BaseCommand):
    help = (
        "Declare every periodic task (idempotent). A schedule that exists keeps the timing an "
        "admin gave it in the Django admin; only its task function is corrected. Delete a "
        "schedule in the admin and run this again to get the default timing back."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for declared in declared_schedules():
            schedule, created = self._declare(declared)
            verb = "created" if created else "kept"
            self.stdout.write(f"{verb}: {declared.name} ({self._timing(schedule)})")
        call_command("setup_alerts", stdout=self.stdout)  # default rules and channels (alerts app)

    @staticmethod
    def _declare(declared: Declared) -> tuple[Schedule, bool]:
        # django-q2's Schedule.name is not unique: two deploys running this at once can both
        # create one. The oldest wins and the others are removed, so a rerun heals it.
        existing = list(Schedule.objects.filter(name=declared.name).order_by("pk"))
        if existing:
            schedule, *duplicates = existing
            Schedule.objects.filter(pk__in=[d.pk for d in duplicates]).delete()
            if schedule.func != declared.func:
                Schedule.objects.filter(pk=schedule.pk).update(func=declared.func)
            return schedule, False
        schedule = Schedule.objects.create(
            name=declared.name,
            func=declared.func,
            schedule_type=declared.schedule_type,
            minutes=declared.minutes,
            cron=declared.cron,
            repeats=-1,
            next_run=timezone.now(),
        )
        return schedule, True

    @staticmethod
    def _timing(schedule: Schedule) -> str:
        if schedule.schedule_type == Schedule.CRON:
            return f"cron {schedule.cron}"
        if schedule.schedule_type == Schedule.MINUTES:
            return f"every {schedule.minutes} min"
        return schedule.get_schedule_type_display().lower()
