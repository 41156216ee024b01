"""Reminders before a reauthorize-by date: one per lead time (TOKENADMIN_WARNING_LEAD_TIMES and each
rule's condition), never twice, none for a deadline no longer current; client-secret age."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from alerts import worker
from alerts.models import AlertRule, Channel, Event, Notification
from alerts.reminders import (
    condition_thresholds,
    is_current_reminder,
    lead_times,
    send_expiry_reminders,
    send_secret_rotation_notices,
)
from connections.models import Connection, RefreshExpiry
from tests.alerts.receiver import WebhookReceiver
from tests.factories import ConnectionFactory, ProviderFactory

pytestmark = pytest.mark.django_db

DEADLINE = datetime(2027, 3, 15, 9, 17, 30, tzinfo=UTC)  # deliberately not on the hour
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def clock():
    with time_machine.travel(DEADLINE - 30 * DAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ops() -> Channel:
    """The default: every expiry warning to the operators."""
    channel = Channel.objects.create(
        name="ops", kind=Channel.Kind.EMAIL, email_addresses="ops@example.com"
    )
    AlertRule.objects.create(name="all warnings", event=Event.EXPIRY_WARNING).channels.add(channel)
    return channel


@pytest.fixture
def data_team() -> Channel:
    """The seed's rule: days_until_expiry <= 10 → email the data team."""
    channel = Channel.objects.create(
        name="data team", kind=Channel.Kind.EMAIL, email_addresses="data@example.com"
    )
    rule = AlertRule.objects.create(
        name="ten days", event=Event.EXPIRY_WARNING, condition="days_until_expiry <= 10"
    )
    rule.channels.add(channel)
    return channel


def absolute_connection(deadline: datetime = DEADLINE, **fields) -> Connection:
    provider = ProviderFactory(
        refresh_token_expiry=RefreshExpiry.ABSOLUTE, refresh_token_lifetime=90 * DAY
    )
    return ConnectionFactory(
        authorized=True, provider=provider, refresh_expires_at=deadline, **fields
    )


def walk(clock, *, start: datetime, end: datetime) -> list[tuple[datetime, str, str]]:
    """Run the hourly job on every hour from `start` to `end`; (when, to, lead) of each email."""
    sent = []
    tick = start.replace(minute=0, second=0)
    while tick <= end:
        clock.move_to(tick)
        before = len(mail.outbox)
        send_expiry_reminders()
        for message in mail.outbox[before:]:
            lead = message.body.split(" · T-")[-1].split()[0]
            sent.append((tick, message.to[0], f"T-{lead}"))
        tick += HOUR
    return sent


def test_it_sends_each_lead_time_once_within_the_hour_after_it(clock, ops, data_team):
    absolute_connection()

    sent = walk(clock, start=DEADLINE - 20 * DAY, end=DEADLINE + 2 * DAY)

    def first_hour_after(days: int) -> datetime:
        moment = DEADLINE - days * DAY
        return moment.replace(minute=0, second=0) + HOUR

    assert sent == [
        (first_hour_after(14), "ops@example.com", "T-14d"),
        (first_hour_after(10), "data@example.com", "T-10d"),
        (first_hour_after(7), "ops@example.com", "T-7d"),
        (first_hour_after(7), "data@example.com", "T-7d"),
        (first_hour_after(3), "ops@example.com", "T-3d"),
        (first_hour_after(3), "data@example.com", "T-3d"),
        (first_hour_after(1), "ops@example.com", "T-1d"),
        (first_hour_after(1), "data@example.com", "T-1d"),
    ]
    subjects = [message.subject for message in mail.outbox]
    assert subjects[0].endswith("by 2027-03-15 09:17 UTC (14 days left)")
    assert subjects[1].endswith("(10 days left)")
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 8


def test_it_sends_the_same_lead_time_once_however_often_the_job_runs(clock, ops):
    absolute_connection()
    clock.move_to(DEADLINE - 7 * DAY)

    assert send_expiry_reminders() == {"T-7d": 1}
    assert send_expiry_reminders() == {}
    clock.shift(3 * HOUR)
    assert send_expiry_reminders() == {}

    assert len(mail.outbox) == 1
    assert Notification.objects.get().dedupe_key == "2027-03-15T09:17:30Z/T-7d"


def test_it_sends_only_the_most_urgent_lead_when_the_deadline_is_already_near(clock, ops):
    absolute_connection()
    clock.move_to(DEADLINE - 5 * DAY)  # created inside the window: no burst of 14, 7

    send_expiry_reminders()

    assert [n.dedupe_key.split("/")[1] for n in Notification.objects.all()] == ["T-7d"]


def test_it_sends_nothing_once_the_deadline_has_passed(clock, ops):
    absolute_connection()
    clock.move_to(DEADLINE)

    assert send_expiry_reminders() == {}
    assert mail.outbox == []


def test_it_stops_reminding_once_the_connection_is_reauthorized(clock, ops):
    connection = absolute_connection()
    clock.move_to(DEADLINE - 7 * DAY)
    send_expiry_reminders()
    old_key = Notification.objects.get().dedupe_key
    # Reauthorized two days later: a new grant, a new 90-day deadline.
    clock.move_to(DEADLINE - 5 * DAY)
    new_deadline = DEADLINE - 5 * DAY + 90 * DAY
    Connection.objects.filter(pk=connection.pk).update(refresh_expires_at=new_deadline)

    sent = walk(clock, start=DEADLINE - 5 * DAY, end=DEADLINE + DAY)

    assert sent == []
    connection.refresh_from_db()
    assert not is_current_reminder(old_key, connection)
    clock.move_to(new_deadline - 14 * DAY)
    assert send_expiry_reminders() == {"T-14d": 1}
    assert is_current_reminder(Notification.objects.latest("created_at").dedupe_key, connection)


def reminder_failing_once(clock, receiver: WebhookReceiver) -> Notification:
    """A T-7 reminder through a webhook that answered 503: it waits for its retry."""
    channel = Channel.objects.create(
        name="hook", kind=Channel.Kind.WEBHOOK, url=receiver.url, secret="signing-secret-0123"
    )
    AlertRule.objects.create(name="hooked", event=Event.EXPIRY_WARNING).channels.add(channel)
    clock.move_to(DEADLINE - 7 * DAY)
    assert send_expiry_reminders() == {"T-7d": 1}
    reminder = Notification.objects.get()
    assert reminder.status == Notification.Status.RETRYING
    return reminder


def test_it_retries_a_reminder_whose_deadline_is_still_current(clock):
    absolute_connection()
    with WebhookReceiver(503, 200) as receiver:
        reminder = reminder_failing_once(clock, receiver)
        clock.move_to(reminder.next_attempt_at)
        assert worker.run_once() == {"retried_sent": 1}

    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == (Notification.Status.SENT, 2)
    assert [request.json["lead"] for request in receiver.received] == ["T-7d", "T-7d"]


def test_it_drops_a_retried_reminder_once_the_connection_was_reauthorized(clock):
    connection = absolute_connection()
    with WebhookReceiver(503, 200) as receiver:
        reminder = reminder_failing_once(clock, receiver)
        # Reauthorized before the retry is due: a new grant, a new 90-day deadline.
        new_deadline = DEADLINE - 7 * DAY + 90 * DAY
        Connection.objects.filter(pk=connection.pk).update(refresh_expires_at=new_deadline)
        clock.move_to(reminder.next_attempt_at)
        assert worker.run_once() == {"retried_failed": 1}
        assert worker.run_once() == {}

    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == (Notification.Status.FAILED, 2)
    assert reminder.error == (
        "not sent: the reminder is no longer current (its reauthorize-by date changed)"
    )
    assert reminder.next_attempt_at is None
    assert len(receiver.received) == 1  # only the first, failed attempt ever left


def test_it_sends_no_reminder_for_a_refresh_token_renewed_by_use(clock, ops):
    provider = ProviderFactory(
        refresh_token_expiry=RefreshExpiry.SLIDING, refresh_token_lifetime=90 * DAY
    )
    ConnectionFactory(authorized=True, provider=provider, refresh_expires_at=DEADLINE)

    assert walk(clock, start=DEADLINE - 15 * DAY, end=DEADLINE) == []


def test_it_sends_no_reminder_for_a_disabled_connection(clock, ops):
    absolute_connection(status=Connection.Status.DISABLED)
    clock.move_to(DEADLINE - 7 * DAY)

    assert send_expiry_reminders() == {}


def test_it_puts_a_fresh_link_in_every_reminder(clock, ops):
    absolute_connection()
    clock.move_to(DEADLINE - 7 * DAY)
    send_expiry_reminders()
    clock.move_to(DEADLINE - 3 * DAY)
    send_expiry_reminders()

    links = [
        word
        for message in mail.outbox
        for word in message.body.split()
        if word.startswith("http://testserver/reauth/")
    ]
    assert len(links) == 2 and links[0] != links[1]


def test_it_costs_the_same_queries_for_3_or_30_connections(clock, ops):
    def queries_for(count: int) -> list[str]:
        Connection.objects.all().delete()
        for _ in range(count):
            absolute_connection()
        clock.move_to(DEADLINE - 7 * DAY)
        send_expiry_reminders()  # the due reminders go out; what follows is the steady state
        clock.shift(HOUR)
        with CaptureQueriesContext(db) as captured:
            assert send_expiry_reminders() == {}
        return [query["sql"] for query in captured.captured_queries]

    few, many = queries_for(3), queries_for(30)

    assert len(few) == len(many) <= 4
    assert not any("_encrypted" in sql for sql in many)


# --- lead times from rule conditions --------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "thresholds"),
    [
        ("days_until_expiry <= 10", [10]),
        ("days_until_expiry < 10", [9]),
        ("days_until_expiry == 5", [5]),
        ("days_until_expiry >= 3", []),
        ("days_until_expiry <= 10 and failure_count >= 1", []),
        ("", []),
        ("not a condition", []),
    ],
)
def test_it_finds_the_day_a_condition_becomes_true(condition, thresholds):
    assert condition_thresholds(condition) == thresholds


def test_it_adds_a_rules_threshold_only_when_no_configured_lead_covers_it(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {
        "WARNING_LEAD_TIMES": (14 * DAY, 7 * DAY, 3 * DAY, DAY)
    }
    seven = AlertRule(pk=1, event=Event.EXPIRY_WARNING, condition="days_until_expiry <= 7")
    ten = AlertRule(pk=2, event=Event.EXPIRY_WARNING, condition="days_until_expiry <= 10")

    leads = lead_times([seven, ten])

    assert [(lead.label, lead.rules) for lead in leads] == [
        ("T-14d", None),
        ("T-10d", (ten,)),
        ("T-7d", None),
        ("T-3d", None),
        ("T-1d", None),
    ]


# --- client-secret age ------------------------------------------------------------------------


@pytest.fixture
def security() -> Channel:
    channel = Channel.objects.create(
        name="security", kind=Channel.Kind.EMAIL, email_addresses="security@example.com"
    )
    rule = AlertRule.objects.create(name="secrets", event=Event.SECRET_ROTATION_DUE)
    rule.channels.add(channel)
    return channel


def test_it_announces_a_client_secret_once_it_is_older_than_the_maximum_age(clock, security):
    set_at = DEADLINE - 400 * DAY
    connection = ConnectionFactory(authorized=True, client_secret_set_at=set_at)
    clock.move_to(set_at + 365 * DAY - timedelta(seconds=1))
    assert send_secret_rotation_notices() == 0

    clock.move_to(set_at + 365 * DAY)
    assert send_secret_rotation_notices() == 1
    clock.shift(DAY)
    assert send_secret_rotation_notices() == 0

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == f"[tokenadmin] Rotate the client secret of {connection.name}"
    assert mail.outbox[0].to == ["security@example.com"]
    assert "client-secret-value" not in mail.outbox[0].body


def test_it_announces_a_new_secret_again_when_it_too_grows_old(clock, security, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"CLIENT_SECRET_MAX_AGE_DAYS": 30}
    connection = ConnectionFactory(authorized=True, client_secret_set_at=DEADLINE - 31 * DAY)
    clock.move_to(DEADLINE)
    send_secret_rotation_notices()
    Connection.objects.filter(pk=connection.pk).update(client_secret_set_at=DEADLINE)

    clock.move_to(DEADLINE + 29 * DAY)
    assert send_secret_rotation_notices() == 0
    clock.move_to(DEADLINE + 30 * DAY)
    assert send_secret_rotation_notices() == 1
    assert len(mail.outbox) == 2


def test_it_says_nothing_about_secrets_of_unknown_age_or_disabled_connections(clock, security):
    ConnectionFactory(authorized=True, client_secret_set_at=None)
    ConnectionFactory(status=Connection.Status.DISABLED, client_secret_set_at=DEADLINE - 900 * DAY)

    assert send_secret_rotation_notices() == 0
