"""The pipelines that use a connection, by their cron schedules."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.core.exceptions import ValidationError
from django.db import models

from connections.models.connection import Connection


def validate_cron(value: str) -> None:
    if not croniter.is_valid(value):
        raise ValidationError(f"{value!r} is not a valid cron expression (e.g. '0 2 * * *').")


def validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not a known time zone (e.g. 'Europe/Berlin')."
        ) from exc


class ConsumerSchedule(models.Model):
    """A pipeline's run schedule. The sweep has a fresh token ready `lead` before each run and
    the expiry monitor warns when the refresh token will be dead at the next run."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="consumer_schedules"
    )
    label = models.CharField(max_length=200, help_text="e.g. 'nightly analytics export'")
    cron = models.CharField(max_length=100, validators=[validate_cron])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    lead_minutes = models.PositiveIntegerField(
        default=10, help_text="Have a fresh token this many minutes before each run."
    )
    run_minutes = models.PositiveIntegerField(
        default=60, help_text="The token must stay valid this long after the run starts."
    )
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    # next_run_at - lead: when the sweep starts caring, stored so its selection is one range scan.
    prepare_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["connection", "label"]
        indexes = [
            models.Index(fields=["next_run_at"], name="consumer_next_run_idx"),
            models.Index(fields=["prepare_at"], name="consumer_prepare_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.cron})"

    def next_run_after(self, moment: datetime) -> datetime:
        """The next run in UTC. Cron is read on the consumer's wall clock; the answer is in UTC
        so that `next_run - lead` is real elapsed time, also across a DST change."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        return croniter(self.cron, local).get_next(datetime).astimezone(UTC)

    @property
    def lead(self) -> timedelta:
        return timedelta(minutes=self.lead_minutes)
