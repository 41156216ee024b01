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


def warning_lead_times() -> tuple[timedelta, ...]:
    """TOKENADMIN_WARNING_LEAD_TIMES (or _DAYS), parsed once by settings: longest first."""
    return settings.TOKENADMIN["WARNING_LEAD_TIMES"]


def warning_window() -> timedelta:
    """Inside this window before its reauthorize-by date a connection is `expiring`: the
    longest lead time (14 days when none is configured)."""
    return max(warning_lead_times(), default=timedelta(days=14))


def _left(delta: timedelta) -> str:
    """'3 days left', '9 h 59 min left', '4 min left' (two units at most)."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days left"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min left"
    return f"{seconds // 60} min left" if seconds >= 60 else f"{seconds} s left"


def evaluate_expiry(connection: Connection, *, now: datetime) -> tuple[str, str]:
    """The status the connection's refresh-token expiry calls for, and why."""
    warning = warning_window()
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
        return Status.EXPIRING, (
            f"reauthorize by {_when(reauthorize_by)} ({_left(reauthorize_by - now)})"
        )
    return Status.ACTIVE, f"reauthorize by {_when(reauthorize_by)}"
