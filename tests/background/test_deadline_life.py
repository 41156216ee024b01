"""The reauthorize-by date over a simulated life: learned from what the provider shows.

A 90-day life at a provider nobody described (kind unknown, lifetime unknown), hour by hour under
a travelling clock (tests/background/simulation.py). What the provider shows decides:
- it rotates refresh tokens but keeps an absolute expiry, visible through introspection: the
  date is known from the consent on, learned to be absolute at the first refresh, and stays put
  through every rotation; `expiring` 14 days before, `needs_reauth` at the expiry;
- the expiry moves with every rotation: it slides, so there is no date, and it stays alive;
- a hard cap: the cap is the date, even for a sliding token;
- nothing shows: the date is unknown, and said to be.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine

from connections.models import Connection, ExpirySource, RefreshAttempt, RefreshExpiry
from connections.models.connection import DeadlineSource
from connections.serializers import connection_summary
from tests.background.fake_provider import ABSOLUTE, SLIDING, FakeProvider, connect, running
from tests.background.simulation import DAY, T0, Snapshot, live, reload, transitions

pytestmark = pytest.mark.django_db(transaction=True)  # the sweeps refresh on worker threads

Status = Connection.Status
Outcome = RefreshAttempt.Outcome
DAILY = 86400  # access tokens live a day: the sweep refreshes (and rotates) once a day


@pytest.fixture(autouse=True)
def hourly_sweep(settings) -> None:
    settings.TOKENADMIN = settings.TOKENADMIN | {"SWEEP_INTERVAL_SECONDS": 3600}


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def undescribed(fake: FakeProvider, **provider: object) -> Connection:
    """Connected to `fake` through a provider nobody described: kind, lifetime and rotation
    unknown; introspection available."""
    fields = {"introspect_url": fake.introspect_url, "rotates_refresh_tokens": None} | provider
    return connect(fake, kind=RefreshExpiry.UNKNOWN, lifetime=None, provider=fields)


def split_at(snapshots: list[Snapshot], moment: datetime) -> tuple[list, list]:
    """The snapshots taken before `moment`, and those taken after it."""
    return [s for s in snapshots if s.at < moment], [s for s in snapshots if s.at > moment]


def expected_status(snapshot: Snapshot, deadline) -> str:
    if snapshot.at < deadline - timedelta(days=14):
        return Status.ACTIVE
    return Status.EXPIRING if snapshot.at < deadline else Status.NEEDS_REAUTH


def test_it_keeps_the_date_of_an_absolute_token_through_every_rotation(clock):
    with running(
        policy=ABSOLUTE, rotate=True, access_expires_in=DAILY, introspects_refresh_tokens=True
    ) as fake:
        connection = undescribed(fake)
        deadline = T0 + 90 * DAY
        # Known from the consent on (introspection), and not assumed renewable meanwhile.
        assert (connection.refresh_expires_at, connection.refresh_expiry_source) == (
            deadline,
            ExpirySource.INTROSPECTION,
        )
        assert connection.reauthorization_deadline == (
            deadline,
            DeadlineSource.EXPIRY_OF_UNKNOWN_KIND,
        )

        snapshots = live(clock, connection, days=92)
        connection = reload(connection)

        first_refresh = RefreshAttempt.objects.filter(connection=connection).earliest("started_at")
        learned = connection.refresh_expiry_learned_from
        assert connection.refresh_expiry_learned == RefreshExpiry.ABSOLUTE
        assert learned == (
            f"introspection: a rotation on {first_refresh.started_at:%Y-%m-%d %H:%M} UTC "
            f"left the expiry at {deadline:%Y-%m-%d %H:%M} UTC"
        )
        # The same date all along; its source says what was known when.
        before_first, after_first = split_at(snapshots, first_refresh.started_at)
        assert before_first and after_first
        for snapshot in before_first:
            assert snapshot.reauthorize_by == deadline, snapshot
            assert snapshot.reauthorize_by_source == DeadlineSource.EXPIRY_OF_UNKNOWN_KIND
        for snapshot in after_first:
            assert snapshot.reauthorize_by == deadline, snapshot
            assert snapshot.reauthorize_by_source == DeadlineSource.ABSOLUTE_EXPIRY, snapshot
        for snapshot in snapshots:
            assert snapshot.status == expected_status(snapshot, deadline), snapshot

        successes = RefreshAttempt.objects.filter(connection=connection, outcome=Outcome.SUCCESS)
        assert successes.count() >= 89 and not successes.filter(rotated=False).exists()
        # Asked at the consent and at the first refresh; once learned absolute, never again.
        assert fake.counts["introspect_refresh"] == 2
        assert transitions(connection) == [
            (Status.PENDING, Status.ACTIVE),
            (Status.ACTIVE, Status.EXPIRING),
            (Status.EXPIRING, Status.NEEDS_REAUTH),
        ]
        warned = connection.status_changes.get(to_status=Status.EXPIRING)
        window_opens = deadline - timedelta(days=14)
        assert window_opens <= warned.created_at < window_opens + DAY
        assert f"reauthorize by {deadline:%Y-%m-%d %H:%M} UTC" in warned.reason
        lost = connection.status_changes.get(to_status=Status.NEEDS_REAUTH)
        assert deadline <= lost.created_at < deadline + DAY


def test_it_has_no_date_once_a_rotation_shows_the_expiry_slides(clock):
    with running(
        policy=SLIDING, rotate=True, access_expires_in=DAILY, introspects_refresh_tokens=True
    ) as fake:
        connection = undescribed(fake)
        # Until a rotation shows otherwise, the known expiry is the deadline.
        assert connection.reauthorize_by == T0 + 90 * DAY

        snapshots = live(clock, connection, days=120)
        connection = reload(connection)

        assert connection.refresh_expiry_learned == RefreshExpiry.SLIDING
        assert "moved the expiry" in connection.refresh_expiry_learned_from
        first_refresh = RefreshAttempt.objects.filter(connection=connection).earliest("started_at")
        before_first, after_first = split_at(snapshots, first_refresh.started_at)
        assert before_first and after_first
        for snapshot in before_first:
            assert (snapshot.reauthorize_by, snapshot.reauthorize_by_source) == (
                T0 + 90 * DAY,
                DeadlineSource.EXPIRY_OF_UNKNOWN_KIND,
            ), snapshot
        for snapshot in after_first:
            assert (snapshot.reauthorize_by, snapshot.reauthorize_by_source) == (
                None,
                DeadlineSource.RENEWED_AUTOMATICALLY,
            ), snapshot
        for snapshot in snapshots:
            assert snapshot.status == Status.ACTIVE, snapshot
            # Each daily use slides it: it is always about 90 days out.
            assert snapshot.refresh_expires_at > snapshot.at + 88 * DAY, snapshot
        assert transitions(connection) == [(Status.PENDING, Status.ACTIVE)]
        assert fake.counts["refused"] == 0
        assert fake.refresh_token_alive(connection.refresh_token)


def test_it_is_reauthorized_by_the_hard_cap_even_when_sliding(clock):
    cap = timedelta(days=60)
    with running(policy=SLIDING, access_expires_in=DAILY, hard_cap=cap) as fake:
        connection = connect(fake)  # described as 90-day sliding, which it is, but capped
        deadline = T0 + cap
        assert connection.refresh_hard_expires_at == deadline
        assert connection.reauthorization_deadline == (deadline, DeadlineSource.HARD_CAP)

        snapshots = live(clock, connection, days=62)
        connection = reload(connection)

        for snapshot in snapshots:
            assert snapshot.reauthorize_by == deadline, snapshot
            assert snapshot.status == expected_status(snapshot, deadline), snapshot
            # Renewal cannot extend a capped token, so none is scheduled.
            assert snapshot.renew_due_at is None, snapshot
        assert not RefreshAttempt.objects.filter(trigger=RefreshAttempt.Trigger.RENEWAL).exists()
        assert transitions(connection)[-1] == (Status.EXPIRING, Status.NEEDS_REAUTH)
        assert connection_summary(connection)["reauthorize_by_source"] == "hard_cap"


def test_it_says_unknown_when_the_provider_shows_nothing(clock):
    # Rotates, but neither responses nor introspection say when refresh tokens expire.
    with running(policy=SLIDING, rotate=True, access_expires_in=DAILY) as fake:
        connection = undescribed(fake, introspect_url="")
        snapshots = live(clock, connection, days=5)
        connection = reload(connection)

        assert connection.provider.rotates_refresh_tokens is True  # learned on the way
        assert connection.refresh_expiry_learned == ""
        for snapshot in snapshots:
            assert (snapshot.reauthorize_by, snapshot.reauthorize_by_source) == (
                None,
                DeadlineSource.UNKNOWN,
            ), snapshot
        summary = connection_summary(connection)
        assert (summary["reauthorize_by"], summary["reauthorize_by_source"]) == (None, "unknown")
        assert summary["refresh_expiry_kind"] == "unknown"
        assert "reauthorization deadline unknown" in connection.status_reason
