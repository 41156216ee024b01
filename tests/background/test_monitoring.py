"""The daily expiry monitor and the health canaries (`connections.monitoring`).

Expiry is tested on rows under a frozen clock; health checks against the django-oauth-toolkit
server (userinfo, introspection, revocation) or `FakeProvider` (a canary URL, a grant whose fresh
tokens APIs still reject).
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from connections import monitoring
from connections.lifecycle import refresh_connection
from connections.models import (
    Connection,
    ConsumerSchedule,
    HealthCheck,
    RefreshAttempt,
    RefreshExpiry,
    StatusChange,
)
from tests.background.fake_provider import ABSOLUTE, connect, running
from tests.factories import ConnectionFactory

Status = Connection.Status
Method = HealthCheck.Method
NOW = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)  # a Monday, 03:00: when the monitor runs
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def absolute(expires_at: datetime | None, **fields: object) -> Connection:
    """An authorized connection whose refresh token dies at `expires_at`, come what may."""
    return ConnectionFactory(
        authorized=True,
        provider__refresh_token_expiry=RefreshExpiry.ABSOLUTE,
        provider__refresh_token_lifetime=timedelta(days=90),
        refresh_expires_at=expires_at,
        **fields,
    )


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def moves(connection: Connection) -> list[tuple[str, str, str]]:
    rows = StatusChange.objects.filter(connection=connection).order_by("created_at", "pk")
    return [(row.from_status, row.to_status, row.reason) for row in rows]


# --- the expiry monitor --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_moves_active_to_expiring_to_needs_reauth_once_each(clock):
    deadline = NOW + 20 * DAY
    connection = absolute(deadline)
    seen = []
    for day in range(22):
        clock.move_to(NOW + day * DAY)
        seen.append(dict(monitoring.monitor_expiry()))
    assert seen.count({Status.EXPIRING: 1}) == 1
    assert seen.count({Status.NEEDS_REAUTH: 1}) == 1
    assert seen.count({}) == 20  # nothing moves, nothing is written
    assert seen.index({Status.EXPIRING: 1}) == 6  # 14 days before
    assert seen.index({Status.NEEDS_REAUTH: 1}) == 20
    assert moves(connection) == [
        (Status.ACTIVE, Status.EXPIRING, "reauthorize by 2025-03-23 03:00 UTC (14 days left)"),
        (Status.EXPIRING, Status.NEEDS_REAUTH, "the refresh token expired on 2025-03-23 03:00 UTC"),
    ]


@pytest.mark.django_db
def test_it_writes_nothing_when_run_again(clock):
    connections = [absolute(NOW + 5 * DAY), absolute(NOW + 50 * DAY), absolute(NOW - DAY)]
    assert monitoring.monitor_expiry() == {Status.EXPIRING: 1, Status.NEEDS_REAUTH: 1}
    rows = StatusChange.objects.count()
    assert monitoring.monitor_expiry() == {}
    assert StatusChange.objects.count() == rows == 2
    assert [reload(c).status for c in connections] == [
        Status.EXPIRING,
        Status.ACTIVE,
        Status.NEEDS_REAUTH,
    ]


@pytest.mark.django_db
def test_it_moves_back_to_active_after_a_new_consent(clock):
    connection = absolute(NOW + 3 * DAY)
    monitoring.monitor_expiry()
    Connection.objects.filter(pk=connection.pk).update(refresh_expires_at=NOW + 90 * DAY)
    assert monitoring.monitor_expiry() == {Status.ACTIVE: 1}
    assert moves(connection)[-1] == (
        Status.EXPIRING,
        Status.ACTIVE,
        "reauthorize by 2025-06-01 03:00 UTC",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.PENDING, Status.NEEDS_REAUTH, Status.DISABLED])
def test_it_leaves_connections_that_are_not_live_alone(clock, status):
    connection = absolute(NOW + 90 * DAY, status=status)
    assert monitoring.monitor_expiry() == {}
    assert reload(connection).status == status


@pytest.mark.django_db
def test_it_keeps_a_degraded_connection_degraded_until_its_token_dies(clock):
    connection = absolute(NOW + 2 * DAY, status=Status.DEGRADED)
    assert monitoring.monitor_expiry() == {}
    assert reload(connection).status == Status.DEGRADED
    clock.move_to(NOW + 2 * DAY)
    assert monitoring.monitor_expiry() == {Status.NEEDS_REAUTH: 1}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"refresh_expires_at": None},
        {
            "provider__refresh_token_expiry": RefreshExpiry.SLIDING,
            "refresh_expires_at": NOW + 30 * DAY,
        },
    ],
    ids=["expiry-unknown", "sliding"],
)
def test_it_never_warns_without_a_reauthorization_deadline(clock, fields):
    connection = ConnectionFactory(authorized=True, **fields)
    assert monitoring.monitor_expiry() == {}
    assert reload(connection).status == Status.ACTIVE


@pytest.mark.django_db
def test_it_warns_when_renewal_has_not_extended_a_sliding_token(clock):
    connection = ConnectionFactory(
        authorized=True,
        provider__refresh_token_expiry=RefreshExpiry.SLIDING,
        refresh_expires_at=NOW + DAY + SECOND,
    )
    assert monitoring.monitor_expiry() == {}
    clock.move_to(NOW + SECOND)
    assert monitoring.monitor_expiry() == {Status.EXPIRING: 1}
    assert reload(connection).status_reason == (
        "the refresh token expires on 2025-03-04 03:00 UTC and renewal has not extended it"
    )


@pytest.mark.django_db
def test_it_warns_when_the_token_will_be_dead_at_a_consumers_next_run(clock, settings):
    # A weekly Monday 02:00 export; the token dies on Thursday. The 3-day window would open on
    # Monday evening — after the last run that can still work.
    settings.TOKENADMIN = settings.TOKENADMIN | {"WARNING_LEAD_TIMES": (3 * DAY,)}
    connection = absolute(datetime(2025, 3, 6, 12, 0, tzinfo=UTC))
    ConsumerSchedule.objects.create(
        connection=connection, label="weekly export", cron="0 2 * * 1", timezone="UTC"
    )
    assert monitoring.monitor_expiry() == {Status.EXPIRING: 1}
    assert reload(connection).status_reason == (
        "the weekly export run at 2025-03-10 02:00 UTC will fail unless the connection is "
        "reauthorized by 2025-03-06 12:00 UTC"
    )


@pytest.mark.django_db
def test_it_does_not_warn_about_a_run_before_the_deadline(clock, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"WARNING_LEAD_TIMES": (3 * DAY,)}
    connection = absolute(datetime(2025, 3, 10, 2, 0, 1, tzinfo=UTC))  # a second after the run
    ConsumerSchedule.objects.create(connection=connection, label="weekly", cron="0 2 * * 1")
    assert monitoring.monitor_expiry() == {}
    assert reload(connection).status == Status.ACTIVE


@pytest.mark.django_db
def test_it_states_a_berlin_consumer_run_in_utc(clock, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"WARNING_LEAD_TIMES": (3 * DAY,)}
    connection = absolute(datetime(2025, 3, 6, 12, 0, tzinfo=UTC))
    ConsumerSchedule.objects.create(
        connection=connection, label="weekly export", cron="0 2 * * 1", timezone="Europe/Berlin"
    )
    monitoring.monitor_expiry()
    # 02:00 in Berlin in March (CET) is 01:00 UTC.
    assert "run at 2025-03-10 01:00 UTC" in reload(connection).status_reason


@pytest.mark.django_db
def test_it_explains_an_expiring_transition_made_by_a_refresh(clock):
    with running(policy=ABSOLUTE, access_expires_in=3600) as fake:
        connection = connect(fake)
        deadline = NOW + 90 * DAY
        clock.move_to(deadline - 10 * DAY)
        refresh_connection(connection, trigger=RefreshAttempt.Trigger.SWEEP, force=True)
    from_status, to_status, reason = moves(connection)[-1]
    assert (from_status, to_status) == (Status.ACTIVE, Status.EXPIRING)
    assert f"reauthorize by {deadline:%Y-%m-%d %H:%M} UTC" in reason


@pytest.mark.django_db
def test_it_keeps_the_absolute_deadline_when_each_response_restates_it(clock):
    # A provider nobody described ("unknown") that sends refresh_token_expires_in each time.
    with running(policy=ABSOLUTE, access_expires_in=3600, send_refresh_expiry=True) as fake:
        connection = connect(fake, kind=RefreshExpiry.UNKNOWN, lifetime=None)
        deadline = NOW + 90 * DAY
        for day in (1, 30, 80, 89):
            clock.move_to(NOW + day * DAY)
            connection = refresh_connection(
                connection, trigger=RefreshAttempt.Trigger.SWEEP, force=True
            )
            assert (connection.refresh_expires_at, connection.reauthorize_by) == (
                deadline,
                deadline,
            )
            assert connection.renew_due_at is None
        assert fake.counts["refreshed"] == 4


@pytest.mark.django_db
@pytest.mark.parametrize("count", [10, 100])
def test_it_monitors_with_a_constant_number_of_queries(clock, count, django_assert_num_queries):
    for n in range(count):
        connection = absolute(NOW + (100 + n) * DAY)
        ConsumerSchedule.objects.create(connection=connection, label="nightly", cron="0 2 * * *")
    with django_assert_num_queries(2):  # connections with providers, their schedules
        assert monitoring.monitor_expiry() == {}


# --- health checks -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_records_a_passing_userinfo_canary(authorized_connection, auth_server_clean):
    check = monitoring.check_health(authorized_connection)
    assert check is not None
    check = HealthCheck.objects.get(pk=check.pk)
    assert (check.method, check.ok, check.http_status, check.error_code) == (
        Method.USERINFO,
        True,
        200,
        "",
    )
    assert 0 <= check.latency_ms < 10_000
    assert reload(authorized_connection).status == Status.ACTIVE
    assert auth_server_clean.stats()["refresh_calls"] == 0


@pytest.mark.django_db
def test_it_measures_the_canarys_latency(clock):
    with running() as fake:
        connection = connect(fake, health_check_url=fake.canary_url)
        fake.canary_delay = 0.2
        check = monitoring.check_health(connection)
    assert check is not None and check.ok
    assert 200 <= check.latency_ms < 5000


@pytest.mark.django_db
def test_it_needs_reauth_when_the_grant_was_revoked(authorized_connection, auth_server_clean):
    auth_server_clean.revoke_all("alice")
    check = monitoring.check_health(authorized_connection)

    assert check is not None
    assert (check.ok, check.http_status, check.error_code) == (False, 401, "unauthorized")
    connection = reload(authorized_connection)
    assert connection.status == Status.NEEDS_REAUTH
    # Confirmed with a refresh, which the server refused: the grant is gone.
    attempt = RefreshAttempt.objects.get(connection=connection)
    assert (attempt.trigger, attempt.outcome, attempt.error_code) == (
        RefreshAttempt.Trigger.FORCED,
        RefreshAttempt.Outcome.PERMANENT_ERROR,
        "invalid_grant",
    )
    assert moves(connection)[-1][:2] == (Status.ACTIVE, Status.NEEDS_REAUTH)
    assert "invalid_grant" in moves(connection)[-1][2]


@pytest.mark.django_db
def test_it_checks_by_introspection_when_there_is_no_userinfo(
    authorized_connection, auth_server_clean
):
    authorized_connection.provider.userinfo_url = ""
    authorized_connection.provider.save()
    check = monitoring.check_health(authorized_connection)
    assert check is not None
    assert (check.method, check.ok, check.http_status) == (Method.INTROSPECTION, True, 200)

    auth_server_clean.revoke_all("alice")
    check = monitoring.check_health(authorized_connection)
    assert check is not None
    assert (check.method, check.ok, check.error_code) == (Method.INTROSPECTION, False, "inactive")
    assert reload(authorized_connection).status == Status.NEEDS_REAUTH


@pytest.mark.django_db
def test_it_keeps_the_status_when_a_canary_url_fails_with_a_server_error(
    authorized_connection, auth_server_clean
):
    with running() as fake:
        fake.canary_status = 500
        authorized_connection.health_check_url = fake.canary_url
        authorized_connection.save(update_fields=["health_check_url"])
        check = monitoring.check_health(authorized_connection)

    assert check is not None
    assert (check.method, check.ok, check.http_status, check.error_code) == (
        Method.URL,
        False,
        500,
        "bad_response",
    )
    assert reload(authorized_connection).status == Status.ACTIVE
    assert not RefreshAttempt.objects.exists()  # a server error proves nothing about the grant
    assert fake.counts["canary"] == 1


@pytest.mark.django_db
def test_it_needs_reauth_when_apis_reject_even_a_fresh_token(clock):
    with running() as fake:
        connection = connect(fake, provider={"userinfo_url": fake.userinfo_url})
        fake.reject_at_apis()  # scopes narrowed: the token endpoint still issues tokens
        check = monitoring.check_health(connection)

    assert check is not None and not check.ok
    checks = HealthCheck.objects.filter(connection=connection)
    assert [(c.ok, c.http_status) for c in checks] == [(False, 401), (False, 401)]
    assert fake.counts["refreshed"] == 1
    connection = reload(connection)
    assert connection.status == Status.NEEDS_REAUTH
    assert connection.status_reason.startswith(
        "health check: the provider rejects a fresh token (unauthorized)"
    )
    assert StatusChange.objects.filter(to_status=Status.NEEDS_REAUTH).count() == 1


@pytest.mark.django_db
def test_it_stays_active_when_the_canary_passes_with_a_fresh_token(clock):
    # The first canary is rejected (the access token was revoked alone); a fresh one passes.
    with running() as fake:
        connection = connect(fake, provider={"userinfo_url": fake.userinfo_url})
        Connection.objects.filter(pk=connection.pk).update(access_token="fake-at-unknown")
        check = monitoring.check_health(connection)
    assert check is not None and check.ok
    assert [c.ok for c in HealthCheck.objects.order_by("pk")] == [False, True]
    assert reload(connection).status == Status.ACTIVE
    assert not StatusChange.objects.exclude(from_status=Status.PENDING).exists()


@pytest.mark.django_db
def test_it_counts_every_outcome_of_a_health_round(clock):
    with running() as fake:
        connect(fake, provider={"userinfo_url": fake.userinfo_url})
        connect(fake, health_check_url=fake.canary_url)
        connect(fake)  # no canary at all
        failing = connect(fake, health_check_url=fake.base_url + "/missing")
        ConnectionFactory(status=Status.PENDING, health_check_url=fake.canary_url)
        assert monitoring.check_all_health() == {"ok": 2, "failed": 1, "skipped": 1}
    assert reload(failing).status == Status.ACTIVE
    assert HealthCheck.objects.count() == 3


@pytest.mark.django_db
def test_it_defers_health_checks_beyond_the_time_budget(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"SWEEP_BUDGET_SECONDS": 0}
    ConnectionFactory.create_batch(2, authorized=True)
    assert monitoring.check_all_health() == {"deferred": 2}


@pytest.mark.django_db
def test_it_keeps_the_status_when_a_canary_answers_forbidden(
    authorized_connection, auth_server_clean
):
    # 403 is a scope problem (RFC 6750 insufficient_scope), not a revoked grant.
    with running() as fake:
        fake.canary_status = 403
        authorized_connection.health_check_url = fake.canary_url
        authorized_connection.save(update_fields=["health_check_url"])
        check = monitoring.check_health(authorized_connection)

    assert check is not None
    assert (check.ok, check.http_status, check.error_code) == (False, 403, "forbidden")
    assert reload(authorized_connection).status == Status.ACTIVE
    assert not RefreshAttempt.objects.exists()
