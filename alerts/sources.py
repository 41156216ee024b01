"""From the rows the engine writes to the alerts they mean (or to none).

Incidents: a connection leaves the healthy statuses (active, expiring) for `degraded`
(`oauth.token.refresh.failed`) or `needs_reauth` (`oauth.connection.needs_reauth`, also when a
degraded connection dies), and the incident ends when it comes back (`oauth.connection.
recovered`). Status changes are written only on transitions, never per poll, so one incident is
one alert and one recovered notice. Everything else (first authorization pending → active,
active ↔ expiring, disabling) is no news: the reminders announce deadlines.

Failovers: `failover` is `oauth.failover.activated`. A `failback` is announced as recovered
only when the primary's own status change has not already said so since the failover began (a
primary that failed over is almost always degraded or dead, and its recovery is announced by
that transition): one recovered notice per incident either way.

Facts are JSON-safe and never hold a token, a secret or a link.
"""

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from alerts.events import Alert
from alerts.messages import days_until
from alerts.models import Event, Notification
from connections.models import AuthorizationRequest, Connection, FailoverEvent, StatusChange
from connections.serializers import iso

Status = Connection.Status
HEALTHY = (Status.ACTIVE, Status.EXPIRING)
TROUBLE = {Status.DEGRADED: Event.REFRESH_FAILED, Status.NEEDS_REAUTH: Event.NEEDS_REAUTH}
MISMATCH_OUTCOME = "account_mismatch"
# Notifications about a refused grant carry this key: once per channel, and rebuildable.
REFUSED_GRANT_KEY = "authorization/{pk}"
# The encrypted columns of a connection are never needed to tell anyone anything.
SECRET_COLUMNS = ("access_token", "refresh_token", "client_secret")


def connections_for_alerts():
    return Connection.objects.select_related("provider").defer(*SECRET_COLUMNS)


def connection_facts(connection: Connection, *, now: datetime | None = None) -> dict[str, Any]:
    """What any alert about `connection` says about it, as it is now."""
    now = now or timezone.now()
    deadline = connection.reauthorize_by
    return {
        "connection": connection.slug,
        "connection_name": connection.name,
        "provider": connection.provider.name,
        "account": connection.account_label or connection.account_id or None,
        "status": connection.status,
        "reauthorize_by": iso(deadline),
        "refresh_expires_at": iso(connection.refresh_expires_at),
        "access_expires_at": iso(connection.access_expires_at),
        "days_until_expiry": days_until(deadline, now=now) if deadline else None,
        "failure_count": connection.failure_count,
    }


def event_for_transition(from_status: str, to_status: str) -> str | None:
    """The event a status change announces, or None when it is no news (module docstring)."""
    if to_status in TROUBLE:
        if from_status == Status.NEEDS_REAUTH:
            return None  # needs_reauth → degraded is not worse news
        return TROUBLE[to_status]
    if to_status in HEALTHY and from_status in TROUBLE:
        return Event.RECOVERED
    return None


def reminder_facts(deadline: datetime, *, lead: str, now: datetime) -> dict[str, Any]:
    """What a reminder says about its deadline; also for its retries, rebuilt from its key."""
    deadline = deadline.astimezone(UTC)
    return {
        "days_until_expiry": days_until(deadline, now=now),
        "lead": lead,
        "reauthorize_by": iso(deadline),
        "reason": f"reauthorize by {deadline:%Y-%m-%d %H:%M} UTC",
    }


def _lead_of(dedupe_key: str) -> str:
    # Reminder keys are "<deadline>/T-<n>d" (alerts.reminders.reminder_key).
    _, _, lead = dedupe_key.rpartition("/")
    return lead if lead.startswith("T-") else ""


def alert_for_status_change(change: StatusChange, connection: Connection) -> Alert | None:
    event = event_for_transition(change.from_status, change.to_status)
    if event is None:
        return None
    facts = connection_facts(connection) | {
        "reason": change.reason,
        "from_status": change.from_status,
        "to_status": change.to_status,
        "occurred_at": iso(change.created_at),
    }
    return Alert(event=event, connection=connection, facts=facts, status_change=change)


def alert_for_failover(event: FailoverEvent, connection: Connection) -> Alert | None:
    backup = (
        Connection.objects.filter(pk=event.backup_id).values_list("slug", flat=True).first()
        if event.backup_id
        else None
    )
    facts = connection_facts(connection) | {
        "reason": event.reason,
        "failover": event.kind,
        "occurred_at": iso(event.created_at),
    }
    if event.kind == FailoverEvent.Kind.FAILOVER:
        facts["served_by"] = backup
        return Alert(event=Event.FAILOVER, connection=connection, facts=facts, failover_event=event)
    if _recovery_announced_since_failover(event):
        return None
    facts["served_by"] = connection.slug
    facts["failed_back_from"] = backup
    return Alert(event=Event.RECOVERED, connection=connection, facts=facts, failover_event=event)


def _recovery_announced_since_failover(failback: FailoverEvent) -> bool:
    started_at = (
        FailoverEvent.objects.filter(
            connection_id=failback.connection_id,
            kind=FailoverEvent.Kind.FAILOVER,
            created_at__lte=failback.created_at,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if started_at is None:
        return False
    return StatusChange.objects.filter(
        connection_id=failback.connection_id,
        created_at__gte=started_at,
        from_status__in=list(TROUBLE),
        to_status__in=HEALTHY,
    ).exists()


def refused_grants():
    """Authorization requests refused because the grant came from the wrong account, without
    their encrypted columns (PKCE verifier, held grant)."""
    return AuthorizationRequest.objects.filter(outcome__startswith=MISMATCH_OUTCOME).only(
        "pk",
        "connection_id",
        "outcome",
        "created_at",
        "completed_at",
        "held_account_id",
        "held_account_label",
        "processed_at",
    )


def alert_for_refused_grant(request: AuthorizationRequest, connection: Connection) -> Alert:
    reason = request.outcome.removeprefix(MISMATCH_OUTCOME).lstrip(": ").strip()
    facts = connection_facts(connection) | {
        "reason": reason or "the grant came from another account",
        "expected_account": connection.account_label
        or connection.account_id
        or connection.expected_account
        or None,
        "seen_account": request.held_account_label or request.held_account_id or None,
        "occurred_at": iso(request.completed_at or request.created_at),
    }
    return Alert(
        event=Event.ACCOUNT_MISMATCH,
        connection=connection,
        facts=facts,
        dedupe_key=REFUSED_GRANT_KEY.format(pk=request.pk),
        authorization=request,
    )


def alert_for_notification(notification: Notification) -> Alert:
    """The alert a notification delivers, rebuilt for a retry from the row it came from (or from
    the connection as it is now, for reminders and drills)."""
    connection = notification.connection
    alert = None
    if connection is not None and notification.status_change_id:
        alert = alert_for_status_change(notification.status_change, connection)
    elif connection is not None and notification.failover_event_id:
        alert = alert_for_failover(notification.failover_event, connection)
    elif connection is not None and (pk := _refused_grant_pk(notification.dedupe_key)):
        request = refused_grants().filter(pk=pk).first()
        alert = request and alert_for_refused_grant(request, connection)
    if alert is not None and alert.event == notification.event:
        return alert
    facts = connection_facts(connection) if connection is not None else {}
    deadline = connection.reauthorize_by if connection is not None else None
    if notification.event == Event.EXPIRY_WARNING and deadline is not None:
        lead = _lead_of(notification.dedupe_key)
        facts |= reminder_facts(deadline, lead=lead, now=timezone.now())
    return Alert(
        event=notification.event,
        connection=connection,
        facts=facts,
        dedupe_key=notification.dedupe_key,
        is_test=notification.is_test,
    )


def _refused_grant_pk(dedupe_key: str) -> int | None:
    prefix, _, pk = dedupe_key.partition("/")
    return int(pk) if prefix == "authorization" and pk.isdigit() else None
