"""A connection's alerts over a simulated life: what a person is told, when, and only once.

Months under a travelling clock, hour by hour (tests/background/simulation.py for the engine's
schedules, tests/background/fake_provider.py for the provider on our clock), with the alert jobs
the cluster runs each hour (the reminder job and the delivery task), run by two workers at once.
The provider was described by nobody: its expiry kind, lifetime and rotation are learned from
what it shows. Alerting is the install's defaults (`ensure_default_alerts`): every event to
TOKENADMIN_ALERT_EMAILS and to the connection's owner contact, and the `days_until_expiry <= 10`
reminder rule, with TOKENADMIN_WARNING_LEAD_TIMES 14d, 7d, 3d, 1d.
"""

from collections.abc import Iterator
from datetime import datetime

import pytest
import time_machine
from django.core import mail

from alerts.defaults import REMINDER_CONDITION, REMINDER_RULE, ensure_default_alerts
from alerts.models import AlertRule, Event, Notification
from connections import monitoring, sweeps
from connections.links import build_reauth_link
from connections.models import Connection, RefreshExpiry
from connections.models.connection import DeadlineSource
from tests.alerts.life import AlertWorkers, Received, consent_through_link, link_in, read_email
from tests.background.fake_provider import ABSOLUTE, SLIDING, FakeProvider, running
from tests.background.simulation import DAY, HOUR, T0, reload
from tests.factories import ConnectionFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)  # sweeps and alert workers are threads

Status = Connection.Status
OPS, OWNER = "ops@example.com", "owner@example.com"
NAME = "Analytics export"
DAILY = 86400  # access tokens live a day: the sweep refreshes (and rotates) once a day


@pytest.fixture(autouse=True)
def alerting(settings) -> None:
    settings.TOKENADMIN = settings.TOKENADMIN | {
        "SWEEP_INTERVAL_SECONDS": 3600,  # the sweep runs hourly here (simulation.py)
        "WARNING_LEAD_TIMES": (14 * DAY, 7 * DAY, 3 * DAY, DAY),
        "ALERT_EMAILS": [OPS],
    }
    ensure_default_alerts()
    assert AlertRule.objects.filter(
        name=REMINDER_RULE, event=Event.EXPIRY_WARNING, condition=REMINDER_CONDITION
    ).exists()


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


class Life:
    """The engine's schedules and two alert workers, hour by hour; every email, when it came."""

    def __init__(self, clock: time_machine.Traveller, workers: AlertWorkers) -> None:
        self.clock = clock
        self.workers = workers
        self.tick = T0.replace(minute=0, second=0) + HOUR
        self.received: list[Received] = []
        self.deadlines: list[tuple[datetime, datetime | None, str]] = []

    def hours(self, count: int, connection: Connection) -> None:
        for _ in range(count):
            self.clock.move_to(self.tick)
            sweeps.sweep_access_tokens()
            sweeps.renew_refresh_tokens()
            if self.tick.hour == 3:
                monitoring.monitor_expiry()
            self.deliver()
            current = reload(connection)
            self.deadlines.append(
                (self.tick, current.reauthorize_by, current.reauthorize_by_source)
            )
            self.tick += HOUR

    def until(self, moment: datetime, connection: Connection) -> None:
        self.hours(int((moment - self.tick) / HOUR) + 1, connection)

    def deliver(self) -> None:
        before = len(mail.outbox)
        self.workers.run()
        # Two workers may finish one hour's emails in either order; sort them by recipient.
        new = [read_email(message, at=self.tick) for message in mail.outbox[before:]]
        self.received += sorted(new, key=lambda email: email.to)


def connect(fake: FakeProvider) -> Connection:
    """A connection to `fake` through a provider nobody described (kind, lifetime and rotation
    unknown), first authorized by its owner through a reauthorization link."""
    provider = ProviderFactory(
        name="Fake analytics",
        token_url=fake.token_url,
        userinfo_url=fake.userinfo_url,
        refresh_token_expiry=RefreshExpiry.UNKNOWN,
        refresh_token_lifetime=None,
        rotates_refresh_tokens=None,
    )
    connection = ConnectionFactory(
        name=NAME,
        slug="analytics",
        provider=provider,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        contact_email=OWNER,
    )
    consent_through_link(build_reauth_link(connection), fake)
    connection = reload(connection)
    assert (connection.status, connection.account_id) == (Status.ACTIVE, "account-alice")
    return connection


def first_hour_from(moment: datetime) -> datetime:
    """The first hourly run at or after `moment`."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + HOUR


def reminder(deadline: datetime, days: int) -> list[Received]:
    """The reminder `days` before `deadline`, as both recipients receive it."""
    at = first_hour_from(deadline - days * DAY)
    left = f"{days} days left"
    if days == 1:  # under a day, the subject says hours and minutes
        hours, minutes = divmod(int((deadline - at).total_seconds()) // 60, 60)
        left = f"in {hours} hours, {minutes} minutes"
    subject = f"[tokenadmin] Reauthorize {NAME} by {deadline:%Y-%m-%d %H:%M} UTC ({left})"
    return [Received(at, to, Event.EXPIRY_WARNING, f"T-{days}d", subject) for to in (OPS, OWNER)]


def both(at: datetime, event: str, subject: str) -> list[Received]:
    return [Received(at, to, event, "", subject) for to in (OPS, OWNER)]


def test_it_reminds_five_times_then_announces_the_expiry_and_the_recovery_each_once(clock):
    with (
        running(
            policy=ABSOLUTE, rotate=True, send_refresh_expiry=True, access_expires_in=DAILY
        ) as fake,
        AlertWorkers(2) as workers,
    ):
        connection = connect(fake)
        deadline = T0 + 90 * DAY
        assert connection.refresh_expires_at == deadline
        life = Life(clock, workers)

        life.until(deadline + 2 * DAY, connection)
        lost = connection.status_changes.get(to_status=Status.NEEDS_REAUTH)
        assert deadline <= lost.created_at < deadline + DAY
        # The owner clicks the link in the needs_reauth email two days later and consents.
        [needs_reauth_email] = [
            m for m in mail.outbox if "Action needed" in m.subject and OWNER in m.to
        ]
        consent_through_link(link_in(needs_reauth_email), fake)
        reauthorized_at = life.tick - HOUR
        life.hours(24 * 20, connection)  # and three weeks more: nothing else to tell
        connection = reload(connection)

    assert connection.status == Status.ACTIVE
    assert connection.reauthorize_by == reauthorized_at + 90 * DAY

    # The date was there from the first refresh on, learned absolute, and never moved.
    first_refresh = connection.refresh_attempts.earliest("started_at").started_at
    before_expiry = [row for row in life.deadlines if first_refresh <= row[0] < lost.created_at]
    assert len(before_expiry) > 88 * 24
    assert {(by, source) for _, by, source in before_expiry} == {
        (deadline, DeadlineSource.ABSOLUTE_EXPIRY)
    }

    expected = (
        reminder(deadline, 14)
        + reminder(deadline, 10)  # the `days_until_expiry <= 10` rule
        + reminder(deadline, 7)
        + reminder(deadline, 3)
        + reminder(deadline, 1)
        + both(
            lost.created_at,
            Event.NEEDS_REAUTH,
            f"[tokenadmin] Action needed: reauthorize {NAME} (Fake analytics)",
        )
        + both(reauthorized_at + HOUR, Event.RECOVERED, f"[tokenadmin] Recovered: {NAME}")
    )
    assert life.received == expected

    # One row per email, each sent once although two workers ran every job every hour.
    notifications = Notification.objects.order_by("created_at", "pk")
    assert notifications.count() == len(expected) == 14
    assert {n.status for n in notifications} == {Notification.Status.SENT}
    assert {n.attempts for n in notifications} == {1}
    ten_days = notifications.filter(dedupe_key__endswith="/T-10d")
    assert {n.rule.name for n in ten_days} == {REMINDER_RULE}


def test_it_never_reminds_about_a_sliding_token_the_sweep_keeps_renewing(clock):
    with (
        running(
            policy=SLIDING, rotate=True, send_refresh_expiry=True, access_expires_in=DAILY
        ) as fake,
        AlertWorkers(2) as workers,
    ):
        connection = connect(fake)
        life = Life(clock, workers)
        life.hours(24 * 100, connection)  # past the day-90 expiry it would have had
        connection = reload(connection)

    assert connection.refresh_expiry_learned == RefreshExpiry.SLIDING
    assert connection.status == Status.ACTIVE
    assert fake.counts["refused"] == 0
    later = [(by, source) for at, by, source in life.deadlines if at > T0 + 2 * DAY]
    assert set(later) == {(None, DeadlineSource.RENEWED_AUTOMATICALLY)}
    assert life.received == []
    assert not Notification.objects.exists()
