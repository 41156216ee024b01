"""The reauthorize-by calendar feed (`/calendar.ics?key=…`), read back with `icalendar`, and the
staff page that shows and renews each user's key."""

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext

from alerts.calendar import issue_calendar_key
from alerts.models import CalendarKey
from connections.models import Connection, RefreshExpiry
from tests.factories import ConnectionFactory, ProviderFactory
from tokenadmin.hashing import sha256_hex
from tokenadmin.logsafety import redact

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def absolute():
    return ProviderFactory(
        name="Analytics Cloud",
        refresh_token_expiry=RefreshExpiry.ABSOLUTE,
        refresh_token_lifetime=90 * DAY,
    )


@pytest.fixture
def key(admin_user) -> str:
    return issue_calendar_key(user=admin_user).key


def feed(key: str) -> icalendar.Calendar:
    response = Client().get("/calendar.ics", {"key": key})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def events(calendar: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(event["summary"]): event for event in calendar.walk("VEVENT")}


def test_it_lists_each_reauthorize_by_date_with_an_alarm_five_days_before(absolute, key):
    deadline = NOW + 20 * DAY
    ConnectionFactory(
        authorized=True,
        name="Analytics export",
        slug="analytics",
        provider=absolute,
        refresh_expires_at=deadline,
        account_label="data-team@example.com",
    )

    calendar = feed(key)

    assert str(calendar["version"]) == "2.0"
    (event,) = calendar.walk("VEVENT")
    assert str(event["summary"]) == "Reauthorize Analytics export"
    assert event.decoded("dtstart") == deadline
    assert str(event["url"]) == "http://testserver/connections/analytics/"
    assert "Analytics Cloud" in str(event["description"])
    assert "data-team@example.com" in str(event["description"])
    (alarm,) = event.walk("VALARM")
    assert str(alarm["action"]) == "DISPLAY"
    assert alarm.decoded("trigger") == -5 * DAY


def test_it_leaves_out_connections_without_a_deadline(absolute, key):
    sliding = ProviderFactory(
        refresh_token_expiry=RefreshExpiry.SLIDING, refresh_token_lifetime=90 * DAY
    )
    ConnectionFactory(authorized=True, name="Kept", provider=absolute, refresh_expires_at=NOW + DAY)
    ConnectionFactory(authorized=True, name="Past", provider=absolute, refresh_expires_at=NOW - DAY)
    ConnectionFactory(
        authorized=True, name="Renewed", provider=sliding, refresh_expires_at=NOW + DAY
    )
    ConnectionFactory(name="Pending", provider=absolute)
    ConnectionFactory(
        authorized=True,
        name="Off",
        provider=absolute,
        refresh_expires_at=NOW + DAY,
        status=Connection.Status.DISABLED,
    )

    assert sorted(events(feed(key))) == ["Reauthorize Kept", "Reauthorize Past"]


def test_it_keeps_an_events_uid_until_the_deadline_changes(absolute, key):
    connection = ConnectionFactory(authorized=True, provider=absolute, refresh_expires_at=NOW + DAY)
    first = str(feed(key).walk("VEVENT")[0]["uid"])
    assert str(feed(key).walk("VEVENT")[0]["uid"]) == first

    Connection.objects.filter(pk=connection.pk).update(refresh_expires_at=NOW + 90 * DAY)

    second = str(feed(key).walk("VEVENT")[0]["uid"])
    assert second != first
    assert connection.slug not in second and connection.name not in second


def test_it_carries_no_link_and_no_secret(absolute, key):
    connection = ConnectionFactory(authorized=True, provider=absolute, refresh_expires_at=NOW + DAY)

    body = Client().get("/calendar.ics", {"key": key}).content.decode()

    assert "/reauth/" not in body
    for secret in (connection.access_token, connection.refresh_token, connection.client_secret):
        assert secret not in body


def test_it_refuses_a_missing_key_with_403_and_an_unknown_one_with_404(key):
    assert Client().get("/calendar.ics").status_code == 403
    assert Client().get("/calendar.ics", {"key": ""}).status_code == 403
    assert Client().get("/calendar.ics", {"key": key + "x"}).status_code == 404
    assert Client().get("/calendar.ics", {"key": key[:-1]}).status_code == 404


def test_it_stops_serving_a_user_who_is_no_longer_staff(admin_user, key):
    get_user_model().objects.filter(pk=admin_user.pk).update(is_staff=False)

    assert Client().get("/calendar.ics", {"key": key}).status_code == 404


def test_it_costs_the_same_queries_for_2_or_20_connections(absolute, key):
    def queries_for(count: int) -> int:
        Connection.objects.all().delete()
        for _ in range(count):
            ConnectionFactory(authorized=True, provider=absolute, refresh_expires_at=NOW + DAY)
        with CaptureQueriesContext(db) as captured:
            assert len(feed(key).walk("VEVENT")) == count
        assert not any("_encrypted" in q["sql"] for q in captured.captured_queries)
        return len(captured.captured_queries)

    assert queries_for(2) == queries_for(20) == 2


# --- the key and its page ---------------------------------------------------------------------


def test_it_shows_a_staff_user_their_feed_url_and_makes_a_new_key_on_request(admin_client):
    page = admin_client.get("/calendar/")
    assert page.status_code == 200
    assert b"You have no calendar key yet." in page.content

    admin_client.post("/calendar/")
    first = CalendarKey.objects.get()
    page = admin_client.get("/calendar/")
    assert f"http://testserver/calendar.ics?key={first.key}".encode() in page.content
    assert page["Referrer-Policy"] == "no-referrer"

    admin_client.post("/calendar/")
    second = CalendarKey.objects.get()
    assert second.key != first.key
    assert Client().get("/calendar.ics", {"key": first.key}).status_code == 404
    assert Client().get("/calendar.ics", {"key": second.key}).status_code == 200


def test_it_keeps_the_page_from_anyone_but_staff(client, django_user_model):
    assert client.get("/calendar/").status_code == 302
    user = django_user_model.objects.create_user("bob", password="pw-bob-123456")
    client.force_login(user)
    assert client.get("/calendar/").status_code == 302
    assert client.post("/calendar/").status_code == 302
    assert not CalendarKey.objects.exists()


def test_it_stores_the_key_encrypted_and_finds_it_by_hash(admin_user):
    calendar_key = issue_calendar_key(user=admin_user)

    with db.cursor() as cursor:
        cursor.execute("SELECT key_encrypted, key_hash FROM alerts_calendarkey")
        stored, key_hash = cursor.fetchone()
    assert calendar_key.key not in str(bytes(stored) if isinstance(stored, memoryview) else stored)
    assert key_hash == sha256_hex(calendar_key.key)


def test_it_keeps_the_key_out_of_logged_request_lines():
    line = '"GET /calendar.ics?key=s3cr3t-key HTTP/1.1" 200'

    assert redact(line) == '"GET /calendar.ics?key=[redacted] HTTP/1.1" 200'
