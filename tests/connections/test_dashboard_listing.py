"""The dashboard's selector (`connections.listing.dashboard_page`): urgency order, filters,
search, pagination, the summary tiles, and what it reads from the database."""

from datetime import timedelta
from itertools import product

import pytest
from django.db import connection as db_connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections.listing import (
    DASHBOARD_PAGE_SIZE,
    DashboardQuery,
    dashboard_page,
    parse_dashboard_query,
    with_deadline,
)
from connections.models import (
    Connection,
    ConsumerSchedule,
    HealthCheck,
    RefreshAttempt,
    RefreshExpiry,
)
from tests.factories import ConnectionFactory, ProviderFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()
Status = Connection.Status


def names(page) -> list[str]:
    return [row.name for row in page.rows]


def with_reauthorize_by(name: str, days: float | None, **fields) -> Connection:
    """An authorized connection whose absolute refresh token dies in `days` (None: sliding)."""
    provider = ProviderFactory(
        refresh_token_expiry=RefreshExpiry.ABSOLUTE if days is not None else RefreshExpiry.SLIDING
    )
    expires = NOW + timedelta(days=days) if days is not None else None
    return ConnectionFactory(
        name=name, provider=provider, authorized=True, refresh_expires_at=expires, **fields
    )


def test_it_puts_broken_connections_first_then_the_soonest_reauthorize_by_then_names():
    with_reauthorize_by("b sliding", None)
    with_reauthorize_by("a sliding", None)
    with_reauthorize_by("far", 80)
    with_reauthorize_by("soon", 3, status=Status.EXPIRING)
    with_reauthorize_by("degraded later", 50, status=Status.DEGRADED)
    with_reauthorize_by("needs reauth sooner", 2, status=Status.NEEDS_REAUTH)
    with_reauthorize_by("off", 1, status=Status.DISABLED)
    ConnectionFactory(name="pending")

    page = dashboard_page(query=DashboardQuery(), now=NOW)

    assert names(page) == [
        "needs reauth sooner",
        "degraded later",
        "soon",
        "far",
        "a sliding",
        "b sliding",
        "pending",
        "off",
    ]


@pytest.mark.parametrize(
    ("learned", "override", "policy", "cap_days", "expiry_days"),
    list(
        product(
            ["", RefreshExpiry.ABSOLUTE, RefreshExpiry.SLIDING],
            ["", RefreshExpiry.UNKNOWN, RefreshExpiry.NONE],
            [RefreshExpiry.UNKNOWN, RefreshExpiry.SLIDING],
            [None, 5, 60],
            [None, 30],
        )
    ),
)
def test_its_sql_deadline_is_the_models_reauthorize_by(
    learned, override, policy, cap_days, expiry_days
):
    connection = ConnectionFactory(
        provider=ProviderFactory(refresh_token_expiry=policy),
        refresh_expiry_learned=learned,
        refresh_expiry_override=override,
        refresh_hard_expires_at=NOW + timedelta(days=cap_days) if cap_days else None,
        refresh_expires_at=NOW + timedelta(days=expiry_days) if expiry_days else None,
    )
    annotated = with_deadline(Connection.objects.filter(pk=connection.pk)).get()
    assert annotated.deadline_at == connection.reauthorize_by


def test_it_filters_by_status_and_provider_and_searches_names_and_slugs():
    google, other = ProviderFactory(slug="google"), ProviderFactory(slug="other")
    ConnectionFactory(name="Nightly Analytics", slug="ga-nightly", provider=google)
    ConnectionFactory(name="CRM sync", slug="crm", provider=google, status=Status.NEEDS_REAUTH)
    ConnectionFactory(name="Ads export", slug="analytics-ads", provider=other)

    def find(**query) -> list[str]:
        return sorted(names(dashboard_page(query=DashboardQuery(**query), now=NOW)))

    assert find(search="ANALYTICS") == ["Ads export", "Nightly Analytics"]  # name or slug
    assert find(statuses=(Status.NEEDS_REAUTH,)) == ["CRM sync"]
    assert find(statuses=(Status.NEEDS_REAUTH, Status.PENDING)) == [
        "Ads export",
        "CRM sync",
        "Nightly Analytics",
    ]
    assert find(provider="google") == ["CRM sync", "Nightly Analytics"]
    assert find(provider="google", search="crm") == ["CRM sync"]
    assert find(search="nothing like it") == []


def test_it_pages_fifty_at_a_time_and_counts_what_matches():
    provider = ProviderFactory()
    Connection.objects.bulk_create(
        Connection(name=f"c{n:03d}", slug=f"c{n:03d}", provider=provider, client_id="x")
        for n in range(DASHBOARD_PAGE_SIZE + 7)
    )
    first = dashboard_page(query=DashboardQuery(), now=NOW)
    second = dashboard_page(query=DashboardQuery(page=2), now=NOW)
    beyond = dashboard_page(query=DashboardQuery(page=9), now=NOW)

    assert len(first.rows) == DASHBOARD_PAGE_SIZE and first.rows[0].name == "c000"
    assert names(second) == [f"c{n:03d}" for n in range(DASHBOARD_PAGE_SIZE, 57)]
    assert (first.matching, first.pages, second.page) == (57, 2, 2)
    assert beyond.page == 2 and names(beyond) == names(second)  # past the end: the last page


def test_its_tiles_count_the_whole_fleet_by_status_in_one_query():
    for status, count in [(Status.ACTIVE, 3), (Status.NEEDS_REAUTH, 2), (Status.DISABLED, 1)]:
        ConnectionFactory.create_batch(count, status=status)
    from connections.listing import count_by_status

    with CaptureQueriesContext(db_connection) as queries:
        tiles = count_by_status()
    filtered = dashboard_page(query=DashboardQuery(statuses=(Status.ACTIVE,)), now=NOW)

    assert len(queries) == 1
    assert tiles == {
        "pending": 0,
        "active": 3,
        "expiring": 0,
        "needs_reauth": 2,
        "degraded": 0,
        "disabled": 1,
    }
    assert filtered.tiles == tiles and filtered.fleet_size == 6 and filtered.matching == 3


def test_it_shows_the_latest_attempt_check_and_next_consumer_run():
    connection = ConnectionFactory(authorized=True)
    for minutes, outcome, code in [(30, "success", ""), (5, "permanent_error", "invalid_grant")]:
        RefreshAttempt.objects.create(
            connection=connection,
            started_at=NOW - timedelta(minutes=minutes),
            trigger="sweep",
            outcome=outcome,
            error_code=code,
        )
    HealthCheck.objects.create(
        connection=connection, checked_at=NOW - timedelta(hours=1), method="userinfo", ok=True
    )
    HealthCheck.objects.create(
        connection=connection, checked_at=NOW - timedelta(hours=9), method="userinfo", ok=False
    )
    for label, hours in [("past", -1), ("later", 30), ("nightly", 3)]:
        ConsumerSchedule.objects.create(
            connection=connection,
            label=label,
            cron="0 2 * * *",
            next_run_at=NOW + timedelta(hours=hours),
        )

    (row,) = dashboard_page(query=DashboardQuery(), now=NOW).rows

    assert (row.last_attempt_outcome, row.last_attempt_error) == (
        "permanent_error",
        "invalid_grant",
    )
    assert row.last_attempt_at == NOW - timedelta(minutes=5)
    assert row.last_check_ok is True and row.last_check_at == NOW - timedelta(hours=1)
    assert (row.next_run_label, row.next_run_at) == ("nightly", NOW + timedelta(hours=3))


def test_it_never_reads_a_token_or_secret_column_and_costs_the_same_at_any_size():
    def measure(count: int) -> list[str]:
        Connection.objects.all().delete()
        for _ in range(count):
            connection = ConnectionFactory(authorized=True, backup=None)
            RefreshAttempt.objects.create(connection=connection, trigger="sweep", outcome="success")
        with CaptureQueriesContext(db_connection) as queries:
            page = dashboard_page(query=DashboardQuery(), now=NOW)
            for row in page.rows:  # what the template reads, deferred fields included
                _ = (row.provider.name, row.reauthorization_deadline, row.account_label)
        return [query["sql"] for query in queries]

    small, large = measure(5), measure(60)

    assert len(small) == len(large) == 4
    assert not [sql for sql in large if "_encrypted" in sql]


def test_it_reads_the_list_query_leniently():
    query = parse_dashboard_query(
        QueryDict("q=+crm+&status=needs_reauth,bogus&status=degraded&provider=google&page=x")
    )
    assert query == DashboardQuery(
        search="crm", statuses=("needs_reauth", "degraded"), provider="google", page=1
    )
    assert parse_dashboard_query(QueryDict("page=3")).page == 3
    assert parse_dashboard_query(QueryDict("page=0")).page == 1
