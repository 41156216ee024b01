"""The alert worker: claim each unannounced row once, turn it into an alert, deliver it.

Shaped like healthchecks' `sendalerts`: a row (StatusChange, FailoverEvent, a refused-account
AuthorizationRequest) is claimed with one conditional UPDATE (`SET processed_at = now WHERE
id = ? AND processed_at IS NULL`), so of any number of workers exactly one wins it. The claim
and the notification rows it produces commit together; delivery (network I/O) happens after
the commit, outside any transaction. A worker that dies after the commit leaves claimed
notifications behind, which the retry sweep picks up once their claim lapses.

`run_once()` is what the every-minute task and the post-commit nudge run; it also makes the
next attempt of every notification that is due for a retry.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from alerts import dispatch, sources
from alerts.events import Alert
from alerts.models import Notification
from connections.models import Connection, FailoverEvent, StatusChange

logger = logging.getLogger(__name__)

BATCH = 200
# Stop taking new work after this long, well inside the cluster's task timeout (300 s): the
# rest waits for the next run a minute later.
BUDGET_SECONDS = 120.0


@dataclass(frozen=True)
class Source:
    """One kind of row alerts are derived from."""

    name: str
    rows: Callable[[], models.QuerySet]
    build: Callable[[Any, Connection], Alert | None]

    def pending(self) -> models.QuerySet:
        return self.rows().filter(processed_at__isnull=True)


SOURCES = (
    Source("status_change", StatusChange.objects.all, sources.alert_for_status_change),
    Source("failover", FailoverEvent.objects.all, sources.alert_for_failover),
    Source("authorization", sources.refused_grants, sources.alert_for_refused_grant),
)


def run_once(*, batch: int = BATCH, budget_seconds: float = BUDGET_SECONDS) -> dict[str, int]:
    """Announce every unclaimed row and retry due notifications; counts of what happened."""
    deadline = time.monotonic() + budget_seconds
    counts: Counter[str] = Counter()
    for source in SOURCES:
        ids = source.pending().order_by("created_at").values_list("pk", flat=True)[:batch]
        for pk in list(ids):
            if time.monotonic() > deadline:
                return dict(counts)
            _announce(source, pk, counts)
    for pk, attempts in dispatch.due_notifications(now=timezone.now(), limit=batch):
        if time.monotonic() > deadline:
            break
        notification = _guarded(pk, lambda pk=pk, n=attempts: dispatch.redeliver(pk, attempts=n))
        if notification is not None:
            counts[f"retried_{notification.status}"] += 1
    return dict(counts)


def claim(source: Source, pk: int) -> bool:
    """Take the row for this worker: True for exactly one caller, ever."""
    return source.pending().filter(pk=pk).update(processed_at=timezone.now()) == 1


def _announce(source: Source, pk: int, counts: Counter[str]) -> None:
    with transaction.atomic():
        if not claim(source, pk):
            return  # another worker got there first
        row = source.rows().get(pk=pk)
        connection = sources.connections_for_alerts().filter(pk=row.connection_id).first()
        alert = source.build(row, connection) if connection is not None else None
        notifications = dispatch.create_notifications(alert) if alert is not None else []
    counts["claimed"] += 1
    if alert is None:
        return
    counts["alerts"] += 1
    for notification in notifications:
        done = _guarded(notification.pk, lambda n=notification: dispatch.deliver(n, alert))
        if done is not None:
            counts[done.status] += 1


def _guarded(pk: int, attempt: Callable[[], Notification | None]) -> Notification | None:
    # One notification that cannot be rendered or sent (a bug) must not stop every other alert:
    # it stays claimed, is logged with its traceback, and the retry sweep tries it again once
    # its claim lapses, up to MAX_ATTEMPTS. Transports never let a URL or secret reach here.
    try:
        return attempt()
    except Exception:
        logger.exception("notification %s: delivery crashed; it will be retried", pk)
        return None
