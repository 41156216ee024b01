"""The connection page: what it shows, what it never shows, and its query count."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from connections.models import (
    Connection,
    ConsumerSchedule,
    FailoverEvent,
    HealthCheck,
    RefreshAttempt,
    StatusChange,
)
from connections.pages.timeline import PER_PAGE
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

SECRETS = {
    "access_token": "SEEDED-ACCESS-TOKEN-0b1f",
    "refresh_token": "SEEDED-REFRESH-TOKEN-77c2",
    "client_secret": "SEEDED-CLIENT-SECRET-9e4a",
}


@pytest.fixture
def connection() -> Connection:
    return ConnectionFactory(
        name="Nightly analytics",
        slug="analytics",
        authorized=True,
        contact_email="owner@example.com",
        refresh_expires_at=timezone.now() + timedelta(days=20),
        refresh_expiry_source="response",
        refresh_expiry_learned="absolute",
        refresh_expiry_learned_from="an expiry that rotation did not move",
        refresh_hard_expires_at=timezone.now() + timedelta(days=10),
        **SECRETS,
    )


def url(connection: Connection) -> str:
    return reverse("connection-detail", args=[connection.slug])


def seed_timeline(connection: Connection, rows_each: int) -> None:
    now = timezone.now()
    channel = ChannelFactory(name="Ops mail")
    for i in range(rows_each):
        at = now - timedelta(minutes=i * 5)
        StatusChange.objects.create(
            connection=connection, from_status="active", to_status="degraded", created_at=at
        )
        RefreshAttempt.objects.create(
            connection=connection,
            started_at=at - timedelta(minutes=1),
            trigger=RefreshAttempt.Trigger.SWEEP,
            outcome=RefreshAttempt.Outcome.TRANSIENT_ERROR,
            error_code="timeout",
        )
        HealthCheck.objects.create(
            connection=connection, checked_at=at - timedelta(minutes=2), method="userinfo", ok=True
        )
        FailoverEvent.objects.create(
            connection=connection, kind="failover", created_at=at - timedelta(minutes=3)
        )
        Notification.objects.create(
            connection=connection,
            channel=channel,
            event="oauth.token.refresh.failed",
            status="sent",
            created_at=at - timedelta(minutes=4),
        )


def test_it_shows_the_configuration_and_token_facts_without_a_secret(admin_client, connection):
    ConsumerSchedule.objects.create(connection=connection, label="nightly export", cron="0 2 * * *")
    backup = ConnectionFactory(name="Spare analytics", slug="spare")
    Connection.objects.filter(pk=connection.pk).update(backup=backup)
    page = admin_client.get(url(connection)).content.decode()
    assert "Nightly analytics" in page
    assert connection.client_id in page
    assert connection.provider.token_url in page
    assert "owner@example.com" in page
    assert "nightly export" in page and "0 2 * * *" in page
    assert "Spare analytics" in page
    assert "Hard cap that no renewal extends" in page  # the deadline's source
    assert "an expiry that rotation did not move" in page  # where the kind was learned
    assert page.count("<time data-countdown") >= 3  # access, refresh, cap, reauthorize-by
    for secret in SECRETS.values():
        assert secret not in page


def test_it_merges_the_timeline_newest_first(admin_client, connection):
    seed_timeline(connection, 1)
    page = admin_client.get(url(connection)).content.decode()
    order = [
        page.index(words)
        for words in (
            "Status: Active → Degraded",
            "Refresh failed (background sweep)",
            "Health check passed",
            "Failed over to",
            "Alert: Refresh failing (degraded) via Ops mail",
        )
    ]
    assert order == sorted(order)


def test_it_pages_the_timeline(admin_client, connection):
    seed_timeline(connection, 12)  # 60 rows
    first = admin_client.get(url(connection))
    assert len(first.context["timeline"].entries) == PER_PAGE
    assert first.context["timeline"].has_next
    second = admin_client.get(url(connection) + "?page=2")
    assert len(second.context["timeline"].entries) == 60 - PER_PAGE
    assert not second.context["timeline"].has_next
    newest_of_second = second.context["timeline"].entries[0].at
    assert newest_of_second <= first.context["timeline"].entries[-1].at


def test_htmx_asks_for_the_timeline_alone(admin_client, connection):
    seed_timeline(connection, 12)
    response = admin_client.get(
        url(connection) + "?page=2", headers={"HX-Request": "true", "HX-Target": "timeline"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="timeline"')
    assert "<html" not in body


@pytest.mark.parametrize("rows_each", [1, 12])
def test_its_query_count_does_not_grow_with_the_timeline(
    admin_client, connection, rows_each, django_assert_num_queries
):
    seed_timeline(connection, rows_each)  # 5 and 60 rows
    admin_client.get(url(connection))  # warm the session
    # session, user, connection, consumers, primaries, five timeline kinds
    with django_assert_num_queries(10):
        response = admin_client.get(url(connection))
    assert response.status_code == 200


def test_it_is_for_staff_only(connection, django_user_model):
    assert Client().get(url(connection)).status_code == 302
    user = django_user_model.objects.create_user("pipeline", password="x")
    client = Client()
    client.force_login(user)
    assert client.get(url(connection)).status_code == 302


def test_it_answers_404_for_an_unknown_connection(admin_client):
    assert admin_client.get("/connections/nothing-here/").status_code == 404


def test_alert_rule_factory_is_importable():
    assert AlertRuleFactory  # used by the action tests


def test_it_shows_the_refresh_margin_in_effect_not_only_the_configured_one(admin_client):
    now = timezone.now()
    short = ConnectionFactory(  # two-minute tokens: refreshed a minute ahead, not 300 s
        authorized=True, last_refreshed_at=now, access_expires_at=now + timedelta(minutes=2)
    )
    page = admin_client.get(url(short)).content.decode()
    assert "60 s before expiry" in page and "configured 300 s" in page
    hourly = ConnectionFactory(authorized=True, last_refreshed_at=now)
    page = admin_client.get(url(hourly)).content.decode()
    assert "300 s before expiry" in page and "configured" not in page
