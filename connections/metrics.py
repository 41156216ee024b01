"""Prometheus metrics, read from the database at scrape time.

Every value comes from rows, not from counters kept in a process, so any web process on any host
gives the same answer: a refresh done by a qcluster worker shows in the next scrape of gunicorn.
The registry holds only this collector (no process or GC metrics: with several gunicorn workers
those would describe whichever worker happened to answer).

A scrape costs three queries whatever the number of connections and never reads an encrypted
column: the connections (only the columns the gauges need), the refresh attempts grouped by
outcome and error code with the latency buckets counted in the same scan, and the failovers by
kind.

The counters count rows: `monitoring.purge_history` deletes refresh attempts older than 90 days
(daily, in the expiry monitor's task), so `tokenadmin_refresh_attempts_total` and the latency
histogram go down then, which Prometheus treats as a counter reset. `rate()` and `increase()`
over a window that spans the purge overstate; alert on short windows, or on the per-connection
gauges. Failover rows are not purged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from connections.models import Connection, FailoverEvent, RefreshAttempt

# Upper bounds of the refresh-latency buckets, in milliseconds (RefreshAttempt.duration_ms). The
# HTTP timeout is 10 s by default; a timed-out refresh that was retried once lands above it.
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000)

# Exactly what the gauges read: `reauthorize_by` needs `Connection.DEADLINE_FIELDS`. A field
# missing here costs one query per connection, silently: tests/test_metrics.py counts the
# queries at two sizes.
CONNECTION_FIELDS = (
    "slug",
    "status",
    "access_expires_at",
    "provider__slug",
    *Connection.DEADLINE_FIELDS,
)


class TokenadminCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from connection_metrics(now=now)
        yield from refresh_attempt_metrics()
        yield failover_metric()


def connection_metrics(*, now: datetime) -> Iterator[Metric]:
    labels = ["connection", "provider"]
    access = GaugeMetricFamily(
        "tokenadmin_connection_access_token_expires_in_seconds",
        "Seconds until the connection's access token expires (negative once it has expired). "
        "Absent when the connection has no access token or its expiry is unknown.",
        labels=labels,
    )
    reauthorize = GaugeMetricFamily(
        "tokenadmin_connection_reauthorize_by_seconds",
        "Seconds until the date by which a person must reauthorize the connection (negative once "
        "passed). Absent when no such date is known: the refresh token is renewed by use, or "
        "its expiry is unknown.",
        labels=labels,
    )
    status = GaugeMetricFamily(
        "tokenadmin_connection_status",
        "The connection's status: one series per connection with value 1, the status in the "
        "`status` label (pending, active, expiring, needs_reauth, degraded, disabled).",
        labels=[*labels, "status"],
    )
    connections = (
        Connection.objects.select_related("provider").only(*CONNECTION_FIELDS).order_by("slug")
    )
    for connection in connections:
        values = [connection.slug, connection.provider.slug]
        if connection.access_expires_at is not None:
            access.add_metric(values, (connection.access_expires_at - now).total_seconds())
        reauthorize_by = connection.reauthorize_by
        if reauthorize_by is not None:
            reauthorize.add_metric(values, (reauthorize_by - now).total_seconds())
        status.add_metric([*values, connection.status], 1)
    yield from (access, reauthorize, status)


def refresh_attempt_metrics() -> Iterator[Metric]:
    """Attempts by outcome and error code, and the latency histogram by outcome: one scan."""
    buckets = {
        f"le_{limit}": Count("pk", filter=Q(duration_ms__lte=limit)) for limit in LATENCY_BUCKETS_MS
    }
    # The sum's alias must not be a field's name: `duration_ms=Sum(...)` would shadow the column,
    # and the bucket filters would then compare the SUM (invalid SQL on SQLite and PostgreSQL).
    rows = (
        RefreshAttempt.objects.order_by()
        .values("outcome", "error_code")
        .annotate(attempts=Count("pk"), total_ms=Sum("duration_ms"), **buckets)
    )
    attempts = CounterMetricFamily(
        "tokenadmin_refresh_attempts",
        "Refreshes tried with a refresh token, by outcome (success, permanent_error, "
        "transient_error) and error code. Counts the rows kept: attempts older than 90 days are "
        "purged daily, which Prometheus sees as a counter reset.",
        labels=["outcome", "error_code"],
    )
    per_outcome: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        attempts.add_metric([row["outcome"], row["error_code"]], row["attempts"])
        totals = per_outcome[row["outcome"]]
        totals["count"] += row["attempts"]
        totals["duration_ms"] += row["total_ms"] or 0
        for name in buckets:
            totals[name] += row[name]
    latency = HistogramMetricFamily(
        "tokenadmin_refresh_duration_seconds",
        "How long refreshes took (the provider's token endpoint, retries included), by "
        "outcome. Purged with the attempts after 90 days.",
        labels=["outcome"],
    )
    for outcome in RefreshAttempt.Outcome.values:
        totals = per_outcome.get(outcome)
        if totals is None:
            continue
        latency.add_metric(
            [outcome],
            buckets=[(str(limit / 1000), totals[f"le_{limit}"]) for limit in LATENCY_BUCKETS_MS]
            + [("+Inf", totals["count"])],
            sum_value=totals["duration_ms"] / 1000,
        )
    yield from (attempts, latency)


def failover_metric() -> Metric:
    counts = dict(FailoverEvent.objects.order_by().values_list("kind").annotate(events=Count("pk")))
    failovers = CounterMetricFamily(
        "tokenadmin_failovers",
        "Failover incidents: `failover` when a primary connection's backup started serving in "
        "its place, `failback` when the primary served again.",
        labels=["kind"],
    )
    for kind in FailoverEvent.Kind.values:
        failovers.add_metric([kind], counts.get(kind, 0))
    return failovers


def build_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TokenadminCollector())
    return registry


REGISTRY = build_registry()
