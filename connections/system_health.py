"""What `/healthz` checks: the database, the task broker and django-q2's scheduler.

Each check answers a `Check`: `ok`, `starting` (healthy: a just-deployed scheduler has not run
the sweep yet) or `error`, with a short reason for the person reading it. Reasons never carry a
URL, a host or a password: only what failed and what to look at.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db import connection as db_connection
from django.utils import timezone
from django_q.conf import croniter
from django_q.models import Schedule, Task

from connections.management.commands.setup_schedules import declared_schedules

SWEEP_FUNC = "connections.tasks.sweep_access_tokens"
# The sweep is healthy when it finished within this many of its intervals.
STALE_AFTER_INTERVALS = 3
BROKER_PING_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "starting" or "error"
    reason: str

    @property
    def healthy(self) -> bool:
        return self.status != "error"

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def check_database() -> Check:
    try:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return Check("error", f"the database did not answer ({type(exc).__name__})")
    return Check("ok", f"{db_connection.vendor} answered")


def check_broker(*, database: Check) -> Check:
    """The ORM broker is the database; a Redis broker must answer a PING within a second."""
    if not settings.REDIS_URL:
        if not database.healthy:
            return Check("error", "the ORM broker is the database, which did not answer")
        return Check("ok", "ORM broker (the database)")
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=BROKER_PING_TIMEOUT_SECONDS,
        socket_timeout=BROKER_PING_TIMEOUT_SECONDS,
    )
    started = time.monotonic()
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return Check("error", f"Redis did not answer a PING ({type(exc).__name__})")
    finally:
        client.close()
    return Check("ok", f"Redis answered a PING in {(time.monotonic() - started) * 1000:.0f} ms")


def sweep_schedule_name() -> str:
    return next(d.name for d in declared_schedules() if d.func == SWEEP_FUNC)


def check_scheduler(*, database: Check, now: datetime | None = None) -> Check:
    """The access-token sweep finished successfully within its last three intervals.

    Read from django-q2's own rows, which both brokers write to the database: the Schedule (its
    timing, as an admin may have edited it) and the Task rows the cluster saves when a task ends
    (`Success` keeps the newest `save_limit`). A schedule that no sweep has finished for yet is
    `starting` while it has been due for less than three intervals, so a fresh deploy is not
    reported broken before the cluster's first tick (every 30 s).
    """
    if not database.healthy:
        return Check("error", "unknown: the database did not answer")
    now = now or timezone.now()
    name = sweep_schedule_name()
    schedule = (
        Schedule.objects.filter(name=name)
        .only("schedule_type", "minutes", "cron", "next_run", "repeats")
        .order_by("pk")
        .first()
    )
    if schedule is None:
        return Check("error", f"no {name!r} schedule: run `manage.py setup_schedules`")
    if schedule.repeats == 0:
        return Check("error", f"the {name!r} schedule is switched off (repeats = 0)")
    interval = schedule_interval(schedule, now=now)
    if interval is None:
        return Check("error", f"the {name!r} schedule does not repeat")
    allowed = interval * STALE_AFTER_INTERVALS
    runs = Task.objects.filter(func=SWEEP_FUNC).order_by("-stopped")
    last_success = runs.filter(success=True).values_list("stopped", flat=True).first()
    if last_success is not None and now - last_success <= allowed:
        return Check("ok", f"the sweep last finished {_describe_duration(now - last_success)} ago")
    if last_success is None and not runs.exists():
        if schedule.next_run and now - schedule.next_run <= allowed:
            return Check("starting", "no sweep has finished yet; the schedule is due")
        return Check(
            "error",
            f"no sweep has run in the {_describe_duration(allowed)} since the schedule was due: "
            "is `manage.py qcluster` running?",
        )
    if last_success is None:
        return Check("error", "no sweep has succeeded yet; see the failed tasks in the admin")
    return Check(
        "error",
        f"the sweep last succeeded {_describe_duration(now - last_success)} ago, more than "
        f"{STALE_AFTER_INTERVALS} intervals of {_describe_duration(interval)}: "
        "is `manage.py qcluster` running?",
    )


def schedule_interval(schedule: Schedule, *, now: datetime) -> timedelta | None:
    """The time between two runs of `schedule`, as django-q2 computes its next run."""
    if schedule.schedule_type == Schedule.ONCE:
        return None
    if schedule.schedule_type == Schedule.CRON:
        runs = croniter(schedule.cron, now)
        first = runs.get_next(datetime)
        return runs.get_next(datetime) - first
    first = schedule.calculate_next_run(now)
    return schedule.calculate_next_run(first) - first


def _describe_duration(delta: timedelta) -> str:
    """A duration for a person: seconds below two minutes, then two units ("3 min 1 s",
    "2 h 5 min", "3 d 4 h"). Never one coarse unit: "3 min ago, more than 3 intervals of 60 s"
    would read as a contradiction just past the threshold."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return _two_units(seconds, (60, "min"), (1, "s"))
    if seconds < 2 * 86400:
        return _two_units(seconds, (3600, "h"), (60, "min"))
    return _two_units(seconds, (86400, "d"), (3600, "h"))


def _two_units(seconds: int, big: tuple[int, str], small: tuple[int, str]) -> str:
    whole, rest = divmod(seconds, big[0])
    part = rest // small[0]
    return f"{whole} {big[1]} {part} {small[1]}" if part else f"{whole} {big[1]}"


def check_system(*, ready_only: bool = False) -> dict[str, Check]:
    """`ready_only`: only what this web process needs to serve requests (the database)."""
    database = check_database()
    if ready_only:
        return {"database": database}
    return {
        "database": database,
        "broker": check_broker(database=database),
        "scheduler": check_scheduler(database=database),
    }
