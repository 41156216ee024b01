"""Months of background work under a travelling clock, for the simulated-life tests.

The clock is frozen (`tick=False`) and stepped an hour at a time. Each hour runs what
`setup_schedules` declares: the access-token sweep and the refresh-token renewal; every day at
03:00 the expiry monitor. The sweep runs hourly here, so its horizon (the sweep interval) is an
hour too, exactly what the every-minute sweep does with its one-minute horizon. The provider is
`FakeProvider` (tests/background/fake_provider.py), whose clock is the same `time.time()`, so its
tokens age with ours. Test modules declare the `clock` and hourly-sweep fixtures themselves.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import time_machine
from django.db.models import QuerySet

from connections import monitoring, sweeps
from connections.models import Connection, RefreshAttempt, StatusChange

T0 = datetime(2025, 1, 6, 9, 17, 30, tzinfo=UTC)  # the consent; deliberately not on the hour
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Snapshot:
    """What the connection looked like right after a daily expiry monitor run."""

    at: datetime
    status: str
    refresh_expires_at: datetime | None
    reauthorize_by: datetime | None
    renew_due_at: datetime | None
    reauthorize_by_source: str = ""


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def live(
    clock: time_machine.Traveller,
    connection: Connection,
    *,
    days: int,
    nightly: Callable[[], None] | None = None,
) -> list[Snapshot]:
    """Run the schedules hour by hour for `days` days; return the daily snapshots."""
    snapshots = []
    tick = T0.replace(minute=0, second=0) + HOUR
    while tick <= T0 + days * DAY:
        clock.move_to(tick)
        sweeps.sweep_access_tokens()
        sweeps.renew_refresh_tokens()
        if tick.hour == 2 and nightly is not None:
            nightly()
        if tick.hour == 3:
            monitoring.monitor_expiry()
            current = reload(connection)
            snapshots.append(
                Snapshot(
                    at=tick,
                    status=current.status,
                    refresh_expires_at=current.refresh_expires_at,
                    reauthorize_by=current.reauthorize_by,
                    renew_due_at=current.renew_due_at,
                    reauthorize_by_source=current.reauthorize_by_source,
                )
            )
        tick += HOUR
    return snapshots


def attempts(connection: Connection, trigger: str) -> QuerySet[RefreshAttempt]:
    return RefreshAttempt.objects.filter(connection=connection, trigger=trigger).order_by(
        "started_at"
    )


def day_of(moment: datetime) -> float:
    return (moment - T0) / DAY


def transitions(connection: Connection) -> list[tuple[str, str]]:
    rows = StatusChange.objects.filter(connection=connection).order_by("created_at", "pk")
    return [(row.from_status, row.to_status) for row in rows]
