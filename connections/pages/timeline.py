"""A connection's timeline: status changes, refresh attempts, health checks, failovers and
alert notifications, merged newest first and paginated.

One query per kind of row, whatever the page: each asks for its newest `end + 1` rows (only the
columns shown), the five lists are merged and the page is cut out. A page deep in the history
reads more rows, never more queries; the admin's history lists go deeper still.

The page is a front door, so it may read the alerts app's rows (the reverse of what connections'
own modules may do).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from alerts.models import Notification
from connections.models import (
    Connection,
    FailoverEvent,
    RefreshAttempt,
)

PER_PAGE = 50
# Beyond this the admin's filtered history lists are the place to look.
MAX_PAGE = 40


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # status, refresh, health, failover, alert
    title: str
    detail: str = ""
    tone: str = "neutral"  # ok, warn, bad, neutral: also said in words, never by colour alone


@dataclass(frozen=True)
class TimelinePage:
    entries: list[Entry]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def _status_entries(connection: Connection, limit: int) -> list[Entry]:
    rows = connection.status_changes.only(
        "connection_id", "created_at", "from_status", "to_status", "reason"
    )
    labels = dict(Connection.Status.choices)
    tones = {"active": "ok", "expiring": "warn", "degraded": "warn", "needs_reauth": "bad"}
    return [
        Entry(
            at=row.created_at,
            kind="status",
            title=f"Status: {labels.get(row.from_status, row.from_status)} → "
            f"{labels.get(row.to_status, row.to_status)}",
            detail=row.reason,
            tone=tones.get(row.to_status, "neutral"),
        )
        for row in rows.order_by("-created_at", "-pk")[:limit]
    ]


def _refresh_entries(connection: Connection, limit: int) -> list[Entry]:
    rows = connection.refresh_attempts.only(
        "connection_id",
        "started_at",
        "duration_ms",
        "trigger",
        "outcome",
        "error_code",
        "message",
        "rotated",
    )
    entries = []
    for row in rows.order_by("-started_at", "-pk")[:limit]:
        ok = row.outcome == RefreshAttempt.Outcome.SUCCESS
        title = f"Refresh {'succeeded' if ok else 'failed'} ({row.get_trigger_display().lower()})"
        parts = [f"{row.duration_ms} ms"]
        if row.rotated:
            parts.append("new refresh token issued")
        if row.error_code:
            parts.append(row.error_code)
        if row.message:
            parts.append(row.message)
        tone = "ok" if ok else "bad" if row.outcome == "permanent_error" else "warn"
        entries.append(Entry(row.started_at, "refresh", title, " · ".join(parts), tone))
    return entries


def _health_entries(connection: Connection, limit: int) -> list[Entry]:
    rows = connection.health_checks.only(
        "connection_id",
        "checked_at",
        "method",
        "ok",
        "http_status",
        "latency_ms",
        "error_code",
        "message",
    )
    entries = []
    for row in rows.order_by("-checked_at", "-pk")[:limit]:
        title = f"Health check {'passed' if row.ok else 'failed'} ({row.get_method_display()})"
        parts = [f"{row.latency_ms} ms"]
        if row.http_status:
            parts.append(f"HTTP {row.http_status}")
        parts += [text for text in (row.error_code, row.message) if text]
        tone = "ok" if row.ok else "bad"
        entries.append(Entry(row.checked_at, "health", title, " · ".join(parts), tone))
    return entries


def _failover_entries(connection: Connection, limit: int) -> list[Entry]:
    rows = (
        connection.failover_events.select_related("backup")
        .only("connection_id", "created_at", "kind", "reason", "backup__name")
        .order_by("-created_at", "-pk")[:limit]
    )
    entries = []
    for row in rows:
        backup = row.backup.name if row.backup else "the backup"
        if row.kind == FailoverEvent.Kind.FAILOVER:
            title, tone = f"Failed over to {backup}", "warn"
        else:
            title, tone = f"Back from {backup} to this connection", "ok"
        entries.append(Entry(row.created_at, "failover", title, row.reason, tone))
    return entries


def _alert_entries(connection: Connection, limit: int) -> list[Entry]:
    rows = (
        Notification.objects.filter(connection=connection)
        .select_related("channel")
        # A channel's URL and secret are encrypted credentials: never read for a page.
        .only(
            "created_at",
            "event",
            "status",
            "recipient",
            "is_test",
            "error",
            "channel__name",
            "channel__kind",
        )
        .order_by("-created_at", "-pk")[:limit]
    )
    entries = []
    for row in rows:
        test = "Test alert" if row.is_test else "Alert"
        status = row.get_status_display().lower()
        title = f"{test}: {row.get_event_display()} via {row.channel.name} ({status})"
        detail = " · ".join(text for text in (row.recipient, row.error) if text)
        tone = {"sent": "ok", "failed": "bad", "retrying": "warn"}.get(row.status, "neutral")
        entries.append(Entry(row.created_at, "alert", title, detail, tone))
    return entries


SOURCES = (_status_entries, _refresh_entries, _health_entries, _failover_entries, _alert_entries)


def page_number(raw: str | None) -> int:
    try:
        number = int(raw or 1)
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def timeline_page(connection: Connection, *, number: int = 1) -> TimelinePage:
    """Page `number` (1 = newest) of the merged timeline; five queries for any page."""
    start = (number - 1) * PER_PAGE
    wanted = start + PER_PAGE + 1  # one more says whether there is a next page
    streams = [source(connection, wanted) for source in SOURCES]
    merged = heapq.merge(*streams, key=lambda entry: entry.at, reverse=True)
    window = list(islice(merged, start, wanted))
    return TimelinePage(
        entries=window[:PER_PAGE],
        number=number,
        has_next=len(window) > PER_PAGE and number < MAX_PAGE,
    )
