"""The background sweeps: refresh what is about to expire, renew what would lapse.

Each sweep selects due connections with one indexed query (`refresh_due_at`, `renew_due_at`,
`ConsumerSchedule.prepare_at`), then refreshes them through the single-flight engine on a bounded
thread pool, skipping any connection another process holds the lease on. Running two sweeps at
once, or losing one, changes timing, never outcome.
"""

import logging
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from connections.lifecycle import TokenUnavailable, refresh_connection
from connections.models import Connection, ConsumerSchedule, RefreshAttempt

logger = logging.getLogger(__name__)

Status = Connection.Status
LIVE_STATUSES = (Status.ACTIVE, Status.EXPIRING, Status.DEGRADED)


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
        .filter(connection__in=_eligible(now))
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
        connection = Connection.objects.select_related("provider").get(pk=job.connection_id)
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
    finally:
        close_old_connections()


def refresh_many(jobs: Iterable[Job], *, trigger: str, force: bool = False) -> Counter[str]:
    """Refresh `jobs` concurrently; return how many ended which way."""
    cfg = settings.TOKENADMIN
    deadline = time.monotonic() + cfg["SWEEP_BUDGET_SECONDS"]
    jobs = list(jobs)
    if not jobs:
        return Counter()
    workers = min(cfg["SWEEP_CONCURRENCY"], len(jobs))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenadmin-sweep") as pool:
        outcomes = pool.map(
            lambda job: _refresh_one(job, trigger=trigger, force=force, deadline=deadline), jobs
        )
        return Counter(outcomes)


def sweep_access_tokens(*, now: datetime | None = None) -> Counter[str]:
    """Every minute: refresh tokens due before the next sweep and ahead of consumer runs."""
    now = now or timezone.now()
    cfg = settings.TOKENADMIN
    interval = timedelta(seconds=cfg["SWEEP_INTERVAL_SECONDS"])
    advance_consumer_schedules(now=now)
    jobs = {
        pk: Job(pk)
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
