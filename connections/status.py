"""What status a connection's refresh-token expiry calls for. Pure: no I/O but the prefetched
consumer schedules, so the refresh engine, the consent flow and the daily monitor agree."""

from datetime import UTC, datetime, timedelta

from django.conf import settings

from connections.models import Connection
from connections.models.connection import DeadlineSource

Status = Connection.Status
NO_DEADLINE_REASONS = {
    DeadlineSource.RENEWED_AUTOMATICALLY: "no reauthorization deadline: renewed automatically",
    DeadlineSource.NEVER_EXPIRES: "no reauthorization deadline: the refresh token never expires",
    DeadlineSource.UNKNOWN: "reauthorization deadline unknown: the provider does not say when "
    "the refresh token expires",
}
# A renewable refresh token this close to its expiry means renewal is failing.
RENEWAL_ALARM = timedelta(days=1)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def evaluate_expiry(connection: Connection, *, now: datetime) -> tuple[str, str]:
    """The status the connection's refresh-token expiry calls for, and why."""
    warning = timedelta(days=max(settings.TOKENADMIN["WARNING_DAYS"], default=14))
    expires_at = connection.refresh_expires_at
    if expires_at is not None and expires_at <= now:
        return Status.NEEDS_REAUTH, f"the refresh token expired on {_when(expires_at)}"
    # One source for the deadline, so this text and `reauthorize_by` never disagree.
    reauthorize_by, why = connection.reauthorization_deadline
    if reauthorize_by is None and expires_at is not None and expires_at - now <= RENEWAL_ALARM:
        # Renewable, yet about to lapse: renewal has not been extending it.
        return Status.EXPIRING, (
            f"the refresh token expires on {_when(expires_at)} and renewal has not extended it"
        )
    if reauthorize_by is None:
        return Status.ACTIVE, NO_DEADLINE_REASONS.get(
            why, NO_DEADLINE_REASONS[DeadlineSource.UNKNOWN]
        )
    schedules = connection.consumer_schedules.all() if connection.pk else ()
    for schedule in schedules:
        next_run = schedule.next_run_at or schedule.next_run_after(now)
        if reauthorize_by <= next_run:
            return Status.EXPIRING, (
                f"the {schedule.label} run at {_when(next_run)} will fail unless the connection "
                f"is reauthorized by {_when(reauthorize_by)}"
            )
    if reauthorize_by - now <= warning:
        days = (reauthorize_by - now).days
        return Status.EXPIRING, f"reauthorize by {_when(reauthorize_by)} ({days} days left)"
    return Status.ACTIVE, f"reauthorize by {_when(reauthorize_by)}"
