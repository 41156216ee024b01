"""The background sweeps: refresh what is about to expire, renew what would lapse.

Each sweep selects due connections with one indexed query (`refresh_due_at`, `renew_due_at`,
`ConsumerSchedule.prepare_at`), then refreshes them through the single-flight engine on a bounded
thread pool, skipping any connection another process holds the lease on. Running two sweeps at
once, or losing one, changes timing, never outcome.
"""

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db import connections as db_connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from connections.lifecycle import TokenUnavailable, refresh_connection
from connections.models import Connection, ConsumerSchedule, RefreshAttempt

logger = logging.getLogger(__name__)

Status = Connection.Status
LIVE_STATUSES = Connection.LIVE_STATUSES
SCHEDULER_TICK_SECONDS = 30


@dataclass(frozen=True)
class Job:
    """One connection to refresh: so its token covers `min_ttl` seconds, or, with `lookahead`,
    its refresh margin plus that many seconds (so it is not due again before the next sweep)."""

    connection_id: int
    min_ttl: int | None = None
    lookahead: int = 0


def _eligible(now: datetime) -> QuerySet[Connection]:
    """Live connections not backing off and not being refreshed by someone else."""
    return (
        Connection.objects.filter(status__in=LIVE_STATUSES)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    )


def select_due_refreshes(*, now: datetime, horizon: timedelta, limit: int) -> list[int]:
    """Connections whose access token is due within `horizon` (the sweep interval)."""
    due = _eligible(now).filter(refresh_due_at__lte=now + horizon).order_by("refresh_due_at")
    return list(due.values_list("pk", flat=True)[:limit])


def select_due_renewals(*, now: datetime, limit: int) -> list[int]:
    """Connections whose sliding or rotating refresh token has reached its renewal age."""
    due = _eligible(now).filter(renew_due_at__lte=now).order_by("renew_due_at")
    return list(due.values_list("pk", flat=True)[:limit])


def advance_consumer_schedules(*, now: datetime) -> int:
    """Set the next run of schedules that have none or whose run has started (2 queries)."""
    stale = list(
        ConsumerSchedule.objects.filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
    )
    for schedule in stale:
        schedule.next_run_at = schedule.next_run_after(now)
        schedule.prepare_at = schedule.next_run_at - schedule.lead
    ConsumerSchedule.objects.bulk_update(stale, ["next_run_at", "prepare_at"], batch_size=500)
    return len(stale)


def select_pipeline_refreshes(*, now: datetime, limit: int) -> list[Job]:
    """Connections with a consumer run coming up whose token would not cover the run.

    A token refreshed inside the lead window is as fresh as the provider makes them, so it is
    not refreshed again even if it cannot cover the whole run.
    """
    due = (
        ConsumerSchedule.objects.filter(prepare_at__lte=now, next_run_at__gt=now)
        # Join filters, not `connection__in=<subquery>`: the scan starts from `prepare_at`.
        .filter(connection__status__in=LIVE_STATUSES)
        .filter(
            Q(connection__next_attempt_at__isnull=True) | Q(connection__next_attempt_at__lte=now)
        )
        .filter(Q(connection__lease_until__isnull=True) | Q(connection__lease_until__lt=now))
        .select_related("connection")
        .order_by("next_run_at")[:limit]
    )
    jobs: dict[int, Job] = {}
    for schedule in due:
        connection = schedule.connection
        covered_until = schedule.next_run_at + timedelta(minutes=schedule.run_minutes)
        fresh_enough = connection.last_refreshed_at and connection.last_refreshed_at >= (
            schedule.prepare_at
        )
        expires_at = connection.access_expires_at
        if fresh_enough or (expires_at is not None and expires_at >= covered_until):
            continue
        min_ttl = int((covered_until - now).total_seconds())
        previous = jobs.get(connection.pk)
        if previous is None or (previous.min_ttl or 0) < min_ttl:
            jobs[connection.pk] = Job(connection.pk, min_ttl)
    return list(jobs.values())


def _refresh_one(job: Job, *, trigger: str, force: bool, deadline: float) -> str:
    if time.monotonic() > deadline:
        return "deferred"
    try:
        # Only what the job needs: the engine reads the full row (and decrypts) under the lease.
        connection = Connection.objects.only(
            "id", "version", "refresh_threshold", "access_expires_at", "last_refreshed_at"
        ).get(pk=job.connection_id)
        before = connection.version
        min_ttl = job.min_ttl
        if job.lookahead:
            min_ttl = max(min_ttl or 0, connection.refresh_margin() + job.lookahead)
        after = refresh_connection(
            connection, trigger=trigger, force=force, min_ttl=min_ttl, wait=False
        )
        return "refreshed" if after.version != before else "skipped"
    except Connection.DoesNotExist:
        return "deleted"
    except TokenUnavailable as exc:
        return exc.code
    except DatabaseError:
        # Counted and logged; the next sweep retries. One bad job must not end the sweep.
        logger.exception("sweep: database error refreshing connection %s", job.connection_id)
        return "database_error"


def refresh_many(jobs: Iterable[Job], *, trigger: str, force: bool = False) -> Counter[str]:
    """Refresh `jobs` on a bounded pool of threads; return how many ended which way.

    Each thread keeps one database connection for all its jobs and closes it when done.
    """
    cfg = settings.TOKENADMIN
    deadline = time.monotonic() + cfg["SWEEP_BUDGET_SECONDS"]
    queue = deque(jobs)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        try:
            while True:
                try:
                    job = queue.popleft()
                except IndexError:
                    return
                outcome = _refresh_one(job, trigger=trigger, force=force, deadline=deadline)
                with lock:
                    outcomes[outcome] += 1
        finally:
            db_connections.close_all()

    threads = [
        threading.Thread(target=work, name=f"tokenadmin-sweep-{n}", daemon=True)
        for n in range(min(cfg["SWEEP_CONCURRENCY"], len(queue)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def sweep_access_tokens(*, now: datetime | None = None) -> Counter[str]:
    """Every minute: refresh tokens due before the next sweep and ahead of consumer runs."""
    now = now or timezone.now()
    cfg = settings.TOKENADMIN
    # django-q2's scheduler looks at schedules every 30 s, so sweeps land up to that much late.
    interval = timedelta(seconds=cfg["SWEEP_INTERVAL_SECONDS"] + SCHEDULER_TICK_SECONDS)
    advance_consumer_schedules(now=now)
    lookahead = int(interval.total_seconds())
    jobs = {
        pk: Job(pk, lookahead=lookahead)
        for pk in select_due_refreshes(now=now, horizon=interval, limit=cfg["SWEEP_BATCH"])
    }
    for job in select_pipeline_refreshes(now=now, limit=cfg["SWEEP_BATCH"]):
        already = jobs.get(job.connection_id)
        jobs[job.connection_id] = Job(
            job.connection_id, min_ttl=job.min_ttl, lookahead=already.lookahead if already else 0
        )
    outcomes = refresh_many(jobs.values(), trigger=RefreshAttempt.Trigger.SWEEP)
    if outcomes:
        logger.info("access-token sweep: %s", dict(outcomes))
    return outcomes


def renew_refresh_tokens(*, now: datetime | None = None) -> Counter[str]:
    """Hourly: use sliding or rotating refresh tokens that reached their renewal age."""
    now = now or timezone.now()
    ids = select_due_renewals(now=now, limit=settings.TOKENADMIN["SWEEP_BATCH"])
    outcomes = refresh_many(
        (Job(pk) for pk in ids), trigger=RefreshAttempt.Trigger.RENEWAL, force=True
    )
    if outcomes:
        logger.info("refresh-token renewal: %s", dict(outcomes))
    return outcomes
