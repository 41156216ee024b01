"""Who is told about an alert, and every attempt to tell them (one Notification row each).

`dispatch(alert)` finds the enabled rules for the alert's event that cover its connection and
whose condition holds for its facts, takes their enabled channels that are not broken, writes
ONE notification per channel (several matching rules do not multiply messages), and delivers.

Delivery state on the row:
- a row is created already claimed by its creator (`next_attempt_at` = now + CLAIM_SECONDS,
  `attempts` = 1); the retry sweep claims due rows with a conditional UPDATE on `attempts`,
  so a crashed sender's row is picked up again once its claim lapses, and never by two at once;
- sent → SENT; transient failure → RETRYING with exponential back-off (honouring Retry-After)
  until MAX_ATTEMPTS, then FAILED; permanent failure → FAILED, and when the channel itself is
  dead (a webhook answering 410) the channel is marked broken and skipped until an admin clears
  it. Test alerts (the fire drill) are tried once: the admin is waiting for the answer.
- A non-empty `dedupe_key` (reminders: deadline and lead time) is unique per channel, connection
  and event: a second dispatch of the same key is skipped, so reminders are sent once. A
  reminder retried after its reauthorize-by date stopped being the one in force (the connection
  was reauthorized meanwhile) is dropped, not sent: FAILED, saying why.
"""

import logging
import random
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from alerts import transports
from alerts.conditions import condition_matches
from alerts.events import Alert
from alerts.messages import Message, render_message
from alerts.models import AlertRule, Channel, Event, Notification
from alerts.sources import SECRET_COLUMNS, alert_for_notification
from alerts.transports import TransportError
from connections.models import Connection

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 6 * 3600
# Longer than any one delivery can take (HTTP and SMTP timeouts), so a live sender keeps its row.
CLAIM_SECONDS = 300
DUE_STATUSES = (Notification.Status.PENDING, Notification.Status.RETRYING)
_ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


def dispatch(alert: Alert, *, rules: Iterable[AlertRule] | None = None) -> list[Notification]:
    """Create and deliver the notifications for `alert`; `rules` restricts the candidate rules
    (reminders pass the rules they evaluated). Returns the rows as delivered."""
    return [
        deliver(notification, alert) for notification in create_notifications(alert, rules=rules)
    ]


def create_notifications(
    alert: Alert, *, rules: Iterable[AlertRule] | None = None
) -> list[Notification]:
    """Write one claimed notification per channel of the matching rules; skips a channel that
    has no recipient for this connection and a `dedupe_key` already used."""
    created = []
    for channel, rule in channels_for(alert, rules=rules):
        notification = create_notification(alert, channel=channel, rule=rule)
        if notification is not None:
            created.append(notification)
    return created


def channels_for(
    alert: Alert, *, rules: Iterable[AlertRule] | None = None
) -> list[tuple[Channel, AlertRule]]:
    """The usable channels of the rules matching `alert`, each once, with the first rule (by id)
    that chose it."""
    candidates = AlertRule.objects.filter(enabled=True, event=alert.event).order_by("pk")
    if rules is not None:
        candidates = candidates.filter(pk__in=[rule.pk for rule in rules])
    if alert.connection is None:
        candidates = candidates.filter(all_connections=True)
    else:
        covers = Q(all_connections=True) | Q(connections=alert.connection)
        candidates = candidates.filter(covers).distinct()
    usable = Channel.objects.filter(enabled=True, broken_at__isnull=True).order_by("pk")
    candidates = candidates.prefetch_related(Prefetch("channels", queryset=usable))
    chosen: dict[int, tuple[Channel, AlertRule]] = {}
    for rule in candidates:
        if not _condition_holds(rule, alert):
            continue
        for channel in rule.channels.all():
            chosen.setdefault(channel.pk, (channel, rule))
    return list(chosen.values())


def _condition_holds(rule: AlertRule, alert: Alert) -> bool:
    try:
        return condition_matches(rule.condition, alert.facts)
    except ValidationError:
        # Saved around the admin's validation (a shell, a fixture): refuse it loudly, send nothing.
        logger.warning("alert rule %s has an unreadable condition; skipped", rule.pk)
        return False


def split_addresses(text: str) -> list[str]:
    """Addresses typed one per line or separated by commas, semicolons or spaces."""
    return [address for address in _ADDRESS_SEPARATORS.split(text) if address]


def recipients_for(channel: Channel, connection: Connection | None) -> list[str]:
    """An email channel's addresses, plus the connection's owner contact when asked for."""
    addresses = split_addresses(channel.email_addresses)
    if channel.to_connection_contact and connection is not None and connection.contact_email:
        addresses.append(connection.contact_email)
    return list(dict.fromkeys(addresses))


def describe_recipient(channel: Channel, recipients: list[str]) -> str:
    """Who a notification went to, safe to store and show: addresses, or a webhook's host only
    (a Slack URL's path is its credential)."""
    if channel.kind == Channel.Kind.EMAIL:
        return ", ".join(recipients)[:500]
    return transports.host_of(channel.url)


def create_notification(
    alert: Alert, *, channel: Channel, rule: AlertRule | None
) -> Notification | None:
    """Write the row for one delivery of `alert` through `channel`, claimed by the caller; None
    when there is nobody to tell or its `dedupe_key` was already used on this channel."""
    recipients = recipients_for(channel, alert.connection)
    if channel.kind == Channel.Kind.EMAIL and not recipients and not alert.is_test:
        # E.g. the owner-contact channel and a connection without a contact. A drill records
        # the failure instead: the admin asked about this channel.
        return None
    now = timezone.now()
    notification = Notification(
        event=alert.event,
        rule=rule,
        channel=channel,
        connection=alert.connection,
        status_change=alert.status_change,
        failover_event=alert.failover_event,
        dedupe_key=alert.dedupe_key,
        recipient=describe_recipient(channel, recipients),
        is_test=alert.is_test,
        attempts=1,
        next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
        created_at=now,
    )
    try:
        with transaction.atomic():
            notification.save()
    except IntegrityError:
        if not alert.dedupe_key:
            raise
        return None  # this key was already sent through this channel
    return notification


# --- delivery -----------------------------------------------------------------------------------
def deliver(notification: Notification, alert: Alert) -> Notification:
    """One attempt to deliver `notification` (claimed by the caller); records the outcome."""
    channel = notification.channel
    # A drill may try a broken or disabled channel: finding out whether it works is its point.
    if (channel.broken_at is not None or not channel.enabled) and not notification.is_test:
        state = "broken" if channel.broken_at else "disabled"
        return _record(
            notification,
            status=Notification.Status.FAILED,
            error=f"not sent: the channel is {state}",
        )
    message = render_message(alert, channel_kind=channel.kind)
    try:
        code = _send(channel, notification, message, alert)
    except TransportError as exc:
        return _record_failure(notification, exc)
    return _record(notification, status=Notification.Status.SENT, response_code=code)


def _send(
    channel: Channel, notification: Notification, message: Message, alert: Alert
) -> int | None:
    if channel.kind == Channel.Kind.EMAIL:
        recipients = recipients_for(channel, alert.connection)
        if not recipients:
            raise TransportError(
                "no recipient: no addresses and no connection contact",
                permanent=True,
                breaks_channel=False,
            )
        transports.send_email(message=message, recipients=recipients)
        return None
    if not channel.url:
        raise TransportError("the channel has no URL", permanent=True)
    if channel.kind == Channel.Kind.WEBHOOK:
        return transports.post_webhook(
            url=channel.url,
            secret=channel.secret,
            payload=message.payload,
            delivery_id=str(notification.pk),
        )
    return transports.post_slack(url=channel.url, message=message)


def _record_failure(notification: Notification, exc: TransportError) -> Notification:
    if exc.breaks_channel:
        mark_channel_broken(notification.channel, reason=exc.message)
    retry = not (exc.permanent or notification.is_test or notification.attempts >= MAX_ATTEMPTS)
    if not retry:
        return _record(
            notification,
            status=Notification.Status.FAILED,
            error=exc.message,
            response_code=exc.response_code,
        )
    delay = retry_delay(notification.attempts, retry_after=exc.retry_after)
    logger.info("notification %s: %s; retrying in %d s", notification.pk, exc.message, delay)
    return _record(
        notification,
        status=Notification.Status.RETRYING,
        error=exc.message,
        response_code=exc.response_code,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )


def retry_delay(attempts: int, *, retry_after: float | None = None) -> float:
    """1, 2, 4, 8 minutes after attempts 1-4 (plus up to 10 % jitter, so receivers that come back
    are not hit by every sender at once), never sooner than the receiver's Retry-After."""
    delay = FIRST_RETRY_SECONDS * 2 ** (attempts - 1) * (1 + random.random() / 10)
    return min(max(delay, retry_after or 0), MAX_RETRY_SECONDS)


def _record(
    notification: Notification,
    *,
    status: str,
    error: str = "",
    response_code: int | None = None,
    next_attempt_at: datetime | None = None,
) -> Notification:
    now = timezone.now()
    fields = {
        "status": status,
        "error": error[:500],
        "response_code": response_code,
        "next_attempt_at": next_attempt_at,
        "sent_at": now if status == Notification.Status.SENT else None,
    }
    Notification.objects.filter(pk=notification.pk).update(**fields)
    for name, value in fields.items():
        setattr(notification, name, value)
    if status == Notification.Status.FAILED:
        logger.warning(
            "notification %s via channel %s failed: %s",
            notification.pk,
            notification.channel_id,
            error,
        )
    return notification


def mark_channel_broken(channel: Channel, *, reason: str) -> None:
    """Stop using `channel` until an admin clears it (conditional: the first reason is kept)."""
    now = timezone.now()
    if Channel.objects.filter(pk=channel.pk, broken_at__isnull=True).update(
        broken_at=now, broken_reason=reason[:500]
    ):
        logger.warning("alert channel %s (%s) marked broken: %s", channel.pk, channel.kind, reason)
    channel.broken_at, channel.broken_reason = (
        channel.broken_at or now,
        channel.broken_reason or reason[:500],
    )


def clear_broken(channels: Iterable[Channel]) -> int:
    """An admin's word that the channels work again."""
    return Channel.objects.filter(pk__in=[c.pk for c in channels]).update(
        broken_at=None, broken_reason=""
    )


# --- the retry sweep ----------------------------------------------------------------------------
def due_notifications(*, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(pk, attempts) of notifications whose next attempt is due (or whose sender's claim
    lapsed), oldest first."""
    return list(
        Notification.objects.filter(status__in=DUE_STATUSES, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "attempts")[:limit]
    )


def redeliver(pk: int, *, attempts: int) -> Notification | None:
    """Claim a due notification (conditional UPDATE on `attempts`: one claimer wins) and make
    its next attempt; None when another worker claimed it first."""
    now = timezone.now()
    due = Notification.objects.filter(
        pk=pk, attempts=attempts, status__in=DUE_STATUSES, next_attempt_at__lte=now
    )
    if attempts >= MAX_ATTEMPTS:
        # A sender died during the last attempt: give up rather than risk an endless loop.
        due.update(
            status=Notification.Status.FAILED,
            next_attempt_at=None,
            error="gave up: the last attempt never finished",
        )
        return None
    if not due.update(
        attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS)
    ):
        return None
    notification = (
        Notification.objects.select_related("channel", "status_change", "failover_event")
        .filter(pk=pk)
        .first()
    )
    if notification is None:
        return None
    if notification.connection_id:
        notification.connection = (
            Connection.objects.select_related("provider")
            .defer(*SECRET_COLUMNS)
            .get(pk=notification.connection_id)
        )
    if stale := _stale_reminder(notification):
        return _record(notification, status=Notification.Status.FAILED, error=stale)
    return deliver(notification, alert_for_notification(notification))


def _stale_reminder(notification: Notification) -> str:
    """Why a reminder retried later must not go out (blank: it may): its reauthorize-by date is
    no longer the one in force, typically because the connection was reauthorized meanwhile."""
    if notification.event != Event.EXPIRY_WARNING or notification.is_test:
        return ""
    # Imported here: the reminder job itself dispatches through this module.
    from alerts.reminders import is_current_reminder

    connection = notification.connection
    if connection is not None and is_current_reminder(notification.dedupe_key, connection):
        return ""
    return "not sent: the reminder is no longer current (its reauthorize-by date changed)"
