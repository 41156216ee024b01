"""The reauthorize-by calendar: an iCalendar feed (RFC 5545) per user, behind a secret key.

One VEVENT per connection with a reauthorize-by date, with an alarm five days before. The UID is
stable per connection and deadline, so a calendar updates the event it has instead of adding one
after every refresh, and a reauthorization (a new deadline) shows as a new event. The feed never
carries a reauthorization link: a calendar is shared and synced far more widely than an email.

Keys are random, stored encrypted (so the page can show the feed URL again) and found by their
SHA-256, so a lookup compares hashes, never the key itself.
"""

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import icalendar
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from alerts.models import CalendarKey
from connections.models import Connection
from connections.serving import dashboard_url
from tokenadmin.hashing import sha256_hex

ALARM_BEFORE = timedelta(days=5)
PRODID = "-//tokenadmin//reauthorize-by calendar//EN"


def issue_calendar_key(*, user: AbstractBaseUser) -> CalendarKey:
    """Give `user` a new feed key; the old one stops working at once."""
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        CalendarKey.objects.filter(user=user).delete()
        return CalendarKey.objects.create(user=user, key=key, key_hash=sha256_hex(key))


def user_for_calendar_key(key: str) -> AbstractBaseUser | None:
    """The active staff user `key` belongs to, or None. One query."""
    if not key:
        return None
    found = (
        CalendarKey.objects.select_related("user")
        .defer("key")
        .filter(key_hash=sha256_hex(key))
        .first()
    )
    if found is None or not (found.user.is_active and found.user.is_staff):
        return None
    return found.user


def feed_url(calendar_key: CalendarKey) -> str:
    return f"{settings.SITE_URL}{reverse('calendar-feed')}?{urlencode({'key': calendar_key.key})}"


def event_uid(connection: Connection, deadline: datetime) -> str:
    """Stable per connection and deadline; names neither (a UID may travel far)."""
    digest = sha256_hex(f"{connection.pk}:{deadline.astimezone(UTC).isoformat()}")[:32]
    return f"reauthorize-{digest}@{urlsplit(settings.SITE_URL).hostname}"


def _event(connection: Connection, deadline: datetime, *, stamp: datetime) -> icalendar.Event:
    account = connection.account_label or connection.account_id or "unknown account"
    url = dashboard_url(connection)
    event = icalendar.Event()
    event.add("uid", event_uid(connection, deadline))
    event.add("dtstamp", stamp)
    event.add("dtstart", deadline.astimezone(UTC))
    event.add("summary", f"Reauthorize {connection.name}")
    event.add(
        "description",
        f"The refresh token of {connection.name} ({connection.provider.name}, {account}) "
        "expires now and no refresh can extend it: consent again before this moment. "
        f"Open {url}",
    )
    event.add("url", url)
    event.add("categories", ["tokenadmin"])
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"Reauthorize {connection.name} within 5 days")
    alarm.add("trigger", -ALARM_BEFORE)
    event.add_component(alarm)
    return event


def build_calendar(*, now: datetime | None = None) -> bytes:
    """The feed: every connection (but disabled ones) that has a reauthorize-by date.

    One query whatever the number of connections; encrypted columns are not read.
    """
    stamp = (now or timezone.now()).astimezone(UTC)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "tokenadmin: reauthorize by")
    # reauthorize_by (a rule on the model) is made of these two columns; it decides per row.
    has_expiry = Q(refresh_expires_at__isnull=False) | Q(refresh_hard_expires_at__isnull=False)
    connections = (
        Connection.objects.filter(has_expiry)
        .exclude(status=Connection.Status.DISABLED)
        .select_related("provider")
        .defer("access_token", "refresh_token", "client_secret")
        .order_by("name", "pk")
    )
    for connection in connections:
        deadline = connection.reauthorize_by
        if deadline is not None:
            calendar.add_component(_event(connection, deadline, stamp=stamp))
    return calendar.to_ical()
