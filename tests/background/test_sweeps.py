"""The access-token sweep and the refresh-token renewal (`connections.sweeps`).

Selection is tested on rows at exact boundaries; refreshing against `FakeProvider` (time travel)
or the django-oauth-toolkit server (real concurrency). The sweeps refresh on worker threads, so
those tests commit their rows (`transaction=True`).
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from connections import sweeps
from connections.lifecycle import BACKOFF_CAP_SECONDS
from connections.models import Connection, ConsumerSchedule, RefreshAttempt, StatusChange
from tests.authserver.harness import AuthServer
from tests.background.fake_provider import FakeProvider, Reply, connect, running
from tests.conftest import authorize_through_link
from tests.factories import ConnectionFactory

Status = Connection.Status
Trigger = RefreshAttempt.Trigger
T0 = datetime(2025, 1, 15, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
INTERVAL = timedelta(seconds=60)  # SWEEP_INTERVAL_SECONDS

committed = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def due_row(**fields: object) -> Connection:
    """An authorized connection whose access token is due `refresh_due_at` (default: T0)."""
    return ConnectionFactory(authorized=True, **({"refresh_due_at": T0} | fields))


# --- which connections the access-token sweep takes -----------------------------------------


@pytest.mark.django_db
def test_it_takes_a_connection_due_exactly_one_sweep_interval_ahead():
    due_row(refresh_due_at=T0 + INTERVAL)
    assert sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=100) != []


@pytest.mark.django_db
def test_it_leaves_a_connection_due_one_second_after_the_next_sweep():
    due_row(refresh_due_at=T0 + INTERVAL + SECOND)
    assert sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=100) == []


@pytest.mark.django_db
def test_it_sets_refresh_due_at_the_threshold_before_the_access_expiry(clock):
    with running(access_expires_in=3600) as fake:
        connection = connect(fake, refresh_threshold=600)
    assert connection.refresh_due_at == T0 + HOUR - timedelta(seconds=600)
    assert connection.renew_due_at == T0 + timedelta(days=72)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "taken"),
    [
        (Status.ACTIVE, True),
        (Status.EXPIRING, True),
        (Status.DEGRADED, True),
        (Status.PENDING, False),
        (Status.NEEDS_REAUTH, False),
        (Status.DISABLED, False),
    ],
)
def test_it_takes_only_live_connections(status, taken):
    connection = due_row(status=status, renew_due_at=T0)
    assert (
        connection.pk in sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=9)
    ) is taken
    assert (connection.pk in sweeps.select_due_renewals(now=T0, limit=9)) is taken


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lease_until", "taken"),
    [(T0 + SECOND, False), (T0, False), (T0 - SECOND, True), (None, True)],
    ids=["lease-live", "lease-ends-now", "lease-lapsed", "no-lease"],
)
def test_it_skips_a_connection_another_process_is_refreshing(lease_until, taken):
    connection = due_row(lease_owner="other-host:1:2", lease_until=lease_until)
    assert (
        connection.pk in sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=9)
    ) is taken


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("next_attempt_at", "taken"),
    [(T0 + SECOND, False), (T0, True), (None, True)],
    ids=["backing-off", "back-off-ends-now", "not-backing-off"],
)
def test_it_skips_a_connection_that_is_backing_off(next_attempt_at, taken):
    connection = due_row(next_attempt_at=next_attempt_at, renew_due_at=T0)
    assert (
        connection.pk in sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=9)
    ) is taken
    assert (connection.pk in sweeps.select_due_renewals(now=T0, limit=9)) is taken


@pytest.mark.django_db
def test_it_takes_the_most_urgent_first_up_to_the_batch_size():
    late = due_row(refresh_due_at=T0 - HOUR)
    due_row(refresh_due_at=T0)
    later = due_row(refresh_due_at=T0 - 2 * HOUR)
    assert sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=2) == [later.pk, late.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("count", [10, 100])
def test_it_selects_with_a_constant_number_of_queries(count, django_assert_num_queries):
    for _ in range(count):
        connection = due_row(renew_due_at=T0)
        ConsumerSchedule.objects.create(connection=connection, label="nightly", cron="0 2 * * *")
    with django_assert_num_queries(1):
        assert len(sweeps.select_due_refreshes(now=T0, horizon=INTERVAL, limit=5000)) == count
    with django_assert_num_queries(1):
        assert len(sweeps.select_due_renewals(now=T0, limit=5000)) == count
    with django_assert_num_queries(2):  # read the stale schedules, one bulk UPDATE
        assert sweeps.advance_consumer_schedules(now=T0) == count
    with django_assert_num_queries(1):
        sweeps.select_pipeline_refreshes(now=T0 + timedelta(hours=1, minutes=55), limit=5000)


# --- refreshing what is due ----------------------------------------------------------------


@committed
def test_it_refreshes_what_is_due_and_leaves_the_rest(clock):
    with running(access_expires_in=3600) as fake:
        soon = connect(fake)
        clock.move_to(T0 + 30 * MINUTE)
        later = connect(fake)
        clock.move_to(T0 + 56 * MINUTE)  # `soon` has 4 minutes left: inside its threshold

        assert sweeps.sweep_access_tokens() == {"refreshed": 1}

        assert fake.counts["refreshed"] == 1
        soon, later = reload(soon), reload(later)
        assert soon.access_expires_at == T0 + 56 * MINUTE + HOUR
        assert soon.refresh_due_at == T0 + 56 * MINUTE + HOUR - timedelta(seconds=300)
        assert later.access_expires_at == T0 + 90 * MINUTE
        attempt = RefreshAttempt.objects.get()
        assert (attempt.connection_id, attempt.trigger, attempt.outcome) == (
            soon.pk,
            Trigger.SWEEP,
            RefreshAttempt.Outcome.SUCCESS,
        )
        assert sweeps.sweep_access_tokens() == {}  # nothing due twice


@committed
def test_it_refreshes_a_token_due_before_the_next_sweep(clock):
    with running(access_expires_in=3600) as fake:
        connection = connect(fake)
        # Due at T0+55m; the sweep at T0+54m30s is the last one before that.
        clock.move_to(T0 + 54 * MINUTE + 30 * SECOND)
        assert sweeps.select_due_refreshes(now=timezone.now(), horizon=INTERVAL, limit=9) == [
            connection.pk
        ]

        assert sweeps.sweep_access_tokens() == {"refreshed": 1}


@committed
def test_it_defers_what_does_not_fit_in_the_sweeps_time_budget(clock, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"SWEEP_BUDGET_SECONDS": 0}
    with running(access_expires_in=3600) as fake:
        connect(fake)
        connect(fake)
        clock.move_to(T0 + 58 * MINUTE)
        assert sweeps.sweep_access_tokens() == {"deferred": 2}
        assert fake.counts["refreshed"] == 0
        assert len(sweeps.select_due_refreshes(now=timezone.now(), horizon=INTERVAL, limit=9)) == 2


@committed
def test_it_refreshes_twenty_due_connections_concurrently_at_a_real_server(
    dot_connection: Connection, auth_server_clean: AuthServer
):
    server = auth_server_clean
    connections = [dot_connection]
    for n in range(19):
        connections.append(
            ConnectionFactory(
                provider=dot_connection.provider,
                client_id=dot_connection.client_id,
                client_secret=dot_connection.client_secret,
                slug=f"export-{n}",
            )
        )
    for connection in connections:
        assert authorize_through_link(connection, server).status_code == 200
    before = {c.pk: reload(c).refresh_token for c in connections}
    server.reset()
    server.set_latency(0.3)

    # 56 minutes on in our clock: every hour-long token is inside its 5-minute threshold. The
    # server's own clock does not move; to it the tokens are fresh, which changes nothing.
    with time_machine.travel(timezone.now() + timedelta(minutes=56)):
        outcomes = sweeps.sweep_access_tokens()

    assert outcomes == {"refreshed": 20}
    assert server.stats()["refresh_calls"] == 20
    # Concurrent, not one at a time: the recorded provider calls overlap in time.
    attempts = RefreshAttempt.objects.filter(trigger=Trigger.SWEEP)
    events = sorted(
        event
        for a in attempts
        for event in ((a.started_at, 1), (a.started_at + timedelta(milliseconds=a.duration_ms), -1))
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak > 1, "the sweep refreshed one connection at a time"
    for connection in connections:
        connection = reload(connection)
        assert connection.status == Status.ACTIVE
        assert connection.refresh_token != before[connection.pk]  # DOT rotates
    assert RefreshAttempt.objects.filter(trigger=Trigger.SWEEP, outcome="success").count() == 20


# --- pipeline awareness --------------------------------------------------------------------


def nightly(connection: Connection, **fields: object) -> ConsumerSchedule:
    return ConsumerSchedule.objects.create(
        connection=connection, label="nightly export", cron="0 2 * * *", **fields
    )


@committed
def test_it_has_a_token_ready_ten_minutes_before_a_consumer_run(clock):
    # Two-hour tokens: the one from 00:00 dies at 02:00, as the run starts; its own refresh would
    # come at 01:55. The run needs a token from 01:50 (lead) until 03:00 (run length).
    with running(access_expires_in=7200) as fake:
        connection = connect(fake)
        nightly(connection, lead_minutes=10, run_minutes=60)
        run_at = T0 + 2 * HOUR

        clock.move_to(T0 + 1 * HOUR + 49 * MINUTE)
        assert sweeps.sweep_access_tokens() == {}
        clock.move_to(T0 + 1 * HOUR + 51 * MINUTE)
        assert sweeps.sweep_access_tokens() == {"refreshed": 1}
        assert reload(connection).access_expires_at >= run_at + HOUR
        for minute in range(52, 61):
            clock.move_to(T0 + HOUR + minute * MINUTE)
            assert sweeps.sweep_access_tokens() == {}

        assert fake.counts["refreshed"] == 1
        schedule = ConsumerSchedule.objects.get()
        assert schedule.next_run_at == run_at + timedelta(days=1)  # advanced at 02:00


@committed
def test_it_leaves_a_token_alone_that_already_covers_the_run(clock):
    with running(access_expires_in=7200) as fake:
        clock.move_to(T0 + 65 * MINUTE)
        connection = connect(fake)  # valid until 03:05, the run ends at 03:00
        nightly(connection)
        for minute in range(49, 61):
            clock.move_to(T0 + HOUR + minute * MINUTE)
            assert sweeps.sweep_access_tokens() == {}
        assert fake.counts["refreshed"] == 0


@committed
def test_it_refreshes_once_in_the_lead_window_when_no_token_can_cover_the_run(clock):
    # Hour-long tokens cannot cover 01:51 to 03:00; one refresh gives the freshest possible.
    with running(access_expires_in=3600) as fake:
        clock.move_to(T0 + HOUR + 30 * MINUTE)
        connection = connect(fake)
        nightly(connection)
        for minute in range(49, 60):
            clock.move_to(T0 + HOUR + minute * MINUTE)
            sweeps.sweep_access_tokens()
        assert fake.counts["refreshed"] == 1
        assert reload(connection).last_refreshed_at == T0 + HOUR + 50 * MINUTE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("now", "next_run_at"),
    [
        (datetime(2025, 1, 15, 12, tzinfo=UTC), datetime(2025, 1, 16, 1, tzinfo=UTC)),  # CET
        (datetime(2025, 7, 15, 12, tzinfo=UTC), datetime(2025, 7, 16, 0, tzinfo=UTC)),  # CEST
    ],
    ids=["winter", "summer"],
)
def test_it_plans_consumer_runs_in_the_consumers_time_zone(now, next_run_at):
    schedule = nightly(ConnectionFactory(authorized=True), timezone="Europe/Berlin")
    assert sweeps.advance_consumer_schedules(now=now) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == next_run_at
    assert schedule.prepare_at == next_run_at - timedelta(minutes=10)


@pytest.mark.django_db
def test_it_prepares_ahead_of_a_run_on_the_spring_forward_night():
    # 02:00 does not exist in Berlin on 2025-03-30; croniter runs the job at 03:00 CEST
    # (01:00 UTC). Ten minutes earlier is 00:50 UTC, whatever the wall clock says.
    schedule = nightly(ConnectionFactory(authorized=True), timezone="Europe/Berlin")
    sweeps.advance_consumer_schedules(now=datetime(2025, 3, 29, 12, tzinfo=UTC))
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2025, 3, 30, 1, tzinfo=UTC)
    assert schedule.prepare_at == datetime(2025, 3, 30, 0, 50, tzinfo=UTC)


@pytest.mark.django_db
def test_it_advances_a_schedule_only_once_its_run_has_started():
    schedule = nightly(ConnectionFactory(authorized=True))
    run_at = datetime(2025, 1, 16, 2, tzinfo=UTC)
    assert sweeps.advance_consumer_schedules(now=run_at - HOUR) == 1
    assert sweeps.advance_consumer_schedules(now=run_at - SECOND) == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at == run_at
    assert sweeps.advance_consumer_schedules(now=run_at) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == run_at + timedelta(days=1)


# --- retries: back-off, Retry-After, degraded ----------------------------------------------


def fail_and_wait(clock: time_machine.Traveller, fake: FakeProvider) -> float:
    """Run a failing sweep; check it holds off until `next_attempt_at`; go there. The delay."""
    now = timezone.now()
    calls = fake.counts["token_calls"]
    assert sweeps.sweep_access_tokens() == {"provider_unavailable": 1}
    assert fake.counts["token_calls"] == calls + 1
    next_attempt_at = Connection.objects.get().next_attempt_at
    clock.move_to(next_attempt_at - SECOND)
    assert sweeps.sweep_access_tokens() == {}
    assert fake.counts["token_calls"] == calls + 1  # backing off: the provider is left alone
    clock.move_to(next_attempt_at)
    return (next_attempt_at - now).total_seconds()


@committed
def test_it_backs_off_exponentially_with_jitter_up_to_a_cap_then_recovers(clock):
    with running(access_expires_in=3600) as fake:
        connection = connect(fake)
        fake.fail_next(10, Reply(503, "upstream unavailable"))
        clock.move_to(T0 + 56 * MINUTE)

        delays = [fail_and_wait(clock, fake) for _ in range(10)]

        for failures, delay in enumerate(delays, start=1):
            ceiling = min(BACKOFF_CAP_SECONDS, 30 * 2 ** (failures - 1))
            assert ceiling / 2 <= delay <= ceiling, (failures, delays)
        assert max(delays) <= BACKOFF_CAP_SECONDS
        assert delays[-1] >= BACKOFF_CAP_SECONDS / 2
        connection = reload(connection)
        assert (connection.status, connection.failure_count) == (Status.DEGRADED, 10)

        assert sweeps.sweep_access_tokens() == {"refreshed": 1}
        connection = reload(connection)
        assert (connection.status, connection.failure_count) == (Status.ACTIVE, 0)
        assert connection.next_attempt_at is None
        assert [
            (row.from_status, row.to_status)
            for row in StatusChange.objects.order_by("created_at", "pk")
        ] == [
            (Status.PENDING, Status.ACTIVE),
            (Status.ACTIVE, Status.DEGRADED),
            (Status.DEGRADED, Status.ACTIVE),
        ]


@committed
def test_it_degrades_after_the_third_failure_in_a_row(clock):
    with running(access_expires_in=3600) as fake:
        connection = connect(fake)
        fake.fail_next(3, Reply(500, "oops"))
        clock.move_to(T0 + 55 * MINUTE)
        statuses = []
        for _ in range(3):
            fail_and_wait(clock, fake)
            statuses.append(reload(connection).status)
        assert statuses == [Status.ACTIVE, Status.ACTIVE, Status.DEGRADED]
        assert StatusChange.objects.filter(to_status=Status.DEGRADED).count() == 1


@committed
def test_it_spreads_retries_of_connections_that_failed_together(clock):
    with running(access_expires_in=3600) as fake:
        for _ in range(10):
            connect(fake)
        fake.fail_next(10, Reply(503, "upstream unavailable"))
        clock.move_to(T0 + 56 * MINUTE)
        assert sweeps.sweep_access_tokens() == {"provider_unavailable": 10}
        delays = {
            (at - timezone.now()).total_seconds()
            for at in Connection.objects.values_list("next_attempt_at", flat=True)
        }
        assert len(delays) > 1  # jitter
        assert all(15 <= delay <= 30 for delay in delays), delays


@committed
@pytest.mark.parametrize(
    "retry_after",
    ["900", "Wed, 15 Jan 2025 01:11:00 GMT"],  # seconds, or an HTTP-date 15 minutes ahead
    ids=["seconds", "http-date"],
)
def test_it_honours_retry_after(clock, retry_after):
    with running(access_expires_in=3600) as fake:
        connect(fake)
        fake.fail_next(1, Reply(429, {"error": "slow_down"}, headers={"Retry-After": retry_after}))
        clock.move_to(T0 + 56 * MINUTE)
        delay = fail_and_wait(clock, fake)
        assert delay == 900
        assert sweeps.sweep_access_tokens() == {"refreshed": 1}
