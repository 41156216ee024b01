"""What alerts say: emails (subject, text, HTML) with a fresh link when a person must act, and
webhook / Slack payloads with the same facts and never a token or a link."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from alerts.events import Alert
from alerts.messages import days_until, relative, render_message
from alerts.models import Channel, Event
from connections.models import (
    Connection,
    ConsumerSchedule,
    FailoverEvent,
    ReauthLink,
    RefreshExpiry,
    StatusChange,
)
from tests.factories import ConnectionFactory, ProviderFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
DEADLINE = datetime(2027, 3, 8, 9, 30, tzinfo=UTC)  # seven days after NOW
EMAIL, WEBHOOK, SLACK = Channel.Kind.EMAIL, Channel.Kind.WEBHOOK, Channel.Kind.SLACK


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def connection() -> Connection:
    """An absolute 90-day grant whose reauthorize-by date is a week away, with a 02:00 pipeline."""
    provider = ProviderFactory(
        name="Analytics Cloud",
        refresh_token_expiry=RefreshExpiry.ABSOLUTE,
        refresh_token_lifetime=timedelta(days=90),
    )
    connection = ConnectionFactory(
        authorized=True,
        name="Analytics export",
        slug="analytics",
        provider=provider,
        account_label="data-team@example.com",
        refresh_expires_at=DEADLINE,
    )
    ConsumerSchedule.objects.create(connection=connection, label="nightly-export", cron="0 2 * * *")
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def warning(connection: Connection) -> Alert:
    return Alert(
        event=Event.EXPIRY_WARNING,
        connection=connection,
        facts={"days_until_expiry": 7, "lead": "T-7d"},
        dedupe_key=f"{DEADLINE.isoformat()}/T-7d",
    )


def needs_reauth(connection: Connection) -> Alert:
    connection.change_status(Connection.Status.NEEDS_REAUTH, reason="invalid_grant: revoked")
    row = StatusChange.objects.filter(connection=connection).latest("created_at")
    return Alert(event=Event.NEEDS_REAUTH, connection=connection, status_change=row)


def secrets_of(connection: Connection) -> list[str]:
    fresh = Connection.objects.get(pk=connection.pk)
    return [fresh.access_token, fresh.refresh_token, fresh.client_secret]


def link_in(text: str) -> str:
    return next(word for word in text.split() if word.startswith("http://testserver/reauth/"))


# --- email ------------------------------------------------------------------------------------


def test_it_says_what_expires_when_and_which_run_fails_in_an_expiry_warning(connection):
    message = render_message(warning(connection), channel_kind=EMAIL)

    assert message.subject == (
        "[tokenadmin] Reauthorize Analytics export by 2027-03-08 09:30 UTC (7 days left)"
    )
    for body in (message.text, message.html):
        assert "Analytics Cloud" in body
        assert "data-team@example.com" in body
        assert "2027-03-08 09:30 UTC (in 7 days)" in body
        # The first 02:00 run after the 09:30 deadline is the next morning's.
        assert "The 02:00 nightly-export run on Tue 2027-03-09 will fail" in body
        assert "http://testserver/connections/analytics/" in body
    assert "expires in 7 days, on 2027-03-08 09:30 UTC, and no refresh can extend it" in (
        message.text
    )


def test_it_carries_a_fresh_seven_day_link_in_every_email_that_asks_for_action(connection):
    first = render_message(warning(connection), channel_kind=EMAIL)
    second = render_message(warning(connection), channel_kind=EMAIL)

    assert link_in(first.text) != link_in(second.text)
    links = ReauthLink.objects.filter(connection=connection)
    assert links.count() == 2
    assert {link.expires_at for link in links} == {NOW + timedelta(days=7)}
    assert f'href="{link_in(first.text)}"' in first.html
    assert "valid 7 days, until 2027-03-08 09:30 UTC" in first.text


def test_it_leaves_the_link_unused_when_a_mail_scanner_opens_it(connection):
    link = link_in(render_message(warning(connection), channel_kind=EMAIL).text)

    for _ in range(2):  # the scanner, then the person
        response = Client().get(link.removeprefix("http://testserver"))
        assert response.status_code == 302
    assert ReauthLink.objects.get(connection=connection).consumed_at is None


@pytest.mark.parametrize(
    "event", [Event.RECOVERED, Event.REFRESH_FAILED, Event.HEALTH_FAILED, Event.FAILOVER]
)
def test_it_puts_no_link_in_emails_that_ask_nobody_to_act(connection, event):
    message = render_message(Alert(event=event, connection=connection), channel_kind=EMAIL)

    assert "/reauth/" not in message.text + message.html
    assert not ReauthLink.objects.exists()


def test_it_says_which_run_fails_next_once_the_connection_needs_reauthorization(connection):
    message = render_message(needs_reauth(connection), channel_kind=EMAIL)

    assert message.subject == (
        "[tokenadmin] Action needed: reauthorize Analytics export (Analytics Cloud)"
    )
    assert "stopped working at 2027-03-01 09:30 UTC (now): invalid_grant: revoked" in message.text
    assert "The 02:00 nightly-export run on Tue 2027-03-02 will fail" in message.text
    assert link_in(message.text)


def test_it_names_the_run_on_the_pipelines_own_wall_clock(connection):
    connection.consumer_schedules.update(timezone="Europe/Berlin")

    message = render_message(warning(connection), channel_kind=EMAIL)

    # 02:00 in Berlin (CET, UTC+1) on the 9th is 01:00 UTC.
    assert (
        "The 02:00 nightly-export run on Tue 2027-03-09 (Europe/Berlin; 2027-03-09 01:00 UTC) "
        "will fail" in message.text
    )


def test_it_escapes_names_in_html_and_keeps_them_readable_in_text(connection):
    Connection.objects.filter(pk=connection.pk).update(name='<script>x()</script> & "Co"')
    connection.refresh_from_db()

    message = render_message(warning(connection), channel_kind=EMAIL)

    assert "<script>" not in message.html
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; &quot;Co&quot;" in message.html
    assert '<script>x()</script> & "Co"' in message.text
    assert '<script>x()</script> & "Co"' in message.subject


def test_it_keeps_the_subject_on_one_line_whatever_the_name_holds(connection):
    Connection.objects.filter(pk=connection.pk).update(name="Export\r\nBcc: someone@example.com")
    connection.refresh_from_db()

    message = render_message(warning(connection), channel_kind=EMAIL)

    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject.startswith("[tokenadmin] Reauthorize Export Bcc: someone@example.com")


@pytest.mark.parametrize("event", list(Event))
@pytest.mark.parametrize("is_test", [False, True], ids=["real", "fire-drill"])
def test_it_renders_every_kind_with_three_runbook_lines_and_no_secret(connection, event, is_test):
    alert = Alert(event=event, connection=connection, is_test=is_test)

    message = render_message(alert, channel_kind=EMAIL)

    assert message.subject.startswith("[tokenadmin] ")
    assert "Analytics export" in message.text and "Analytics export" in message.html
    assert "\n1. " in message.text and "\n2. " in message.text and "\n3. " in message.text
    assert "\n4. " not in message.text
    assert message.html.count("<li>") >= 3
    assert "{{" not in message.text + message.html  # no template left unrendered
    for secret in secrets_of(connection):
        assert secret not in message.text + message.html
    if is_test:
        assert message.subject.startswith("[tokenadmin] Test alert: ")
        assert "/reauth/" not in message.text


def test_it_says_how_old_a_client_secret_is(connection, settings):
    Connection.objects.filter(pk=connection.pk).update(client_secret_set_at=NOW - timedelta(400))
    connection.refresh_from_db()

    message = render_message(
        Alert(event=Event.SECRET_ROTATION_DUE, connection=connection), channel_kind=EMAIL
    )

    assert message.subject == "[tokenadmin] Rotate the client secret of Analytics export"
    assert "was set on 2026-01-25 09:30 UTC, 400 days ago" in message.text
    assert "rotated after 365 days" in message.text


def test_it_names_the_backup_that_serves_during_a_failover(connection):
    backup = ConnectionFactory(name="Analytics export (backup)")
    row = FailoverEvent.objects.create(
        connection=connection, backup=backup, kind=FailoverEvent.Kind.FAILOVER, reason="503"
    )
    alert = Alert(event=Event.FAILOVER, connection=connection, failover_event=row)

    message = render_message(alert, channel_kind=EMAIL)

    assert message.subject == (
        "[tokenadmin] Analytics export failed over to Analytics export (backup)"
    )


# --- webhook and Slack ------------------------------------------------------------------------


def test_it_gives_webhooks_the_facts_and_never_a_token_or_link(connection):
    alert = warning(connection)
    alert.facts["refresh_token"] = "leaked-by-a-careless-source"

    message = render_message(alert, channel_kind=WEBHOOK)

    payload = message.payload
    assert payload["event"] == "oauth.token.expiry.warning"
    assert payload["connection"] == "analytics"
    assert payload["connection_name"] == "Analytics export"
    assert payload["provider"] == "Analytics Cloud"
    assert payload["reauthorize_by"] == "2027-03-08T09:30:00Z"
    assert payload["occurred_at"] == "2027-03-01T09:30:00Z"
    assert payload["days_until_expiry"] == 7
    assert payload["lead"] == "T-7d"
    assert payload["dashboard_url"] == "http://testserver/connections/analytics/"
    assert payload["consumers"] == [{"label": "nightly-export", "fails_at": "2027-03-09T02:00:00Z"}]
    body = json.dumps(payload)
    for secret in [*secrets_of(connection), "leaked-by-a-careless-source", "/reauth/"]:
        assert secret not in body
    assert not ReauthLink.objects.exists()


def test_it_gives_slack_the_same_facts_and_a_button_to_the_dashboard(connection):
    message = render_message(warning(connection), channel_kind=SLACK)

    payload = message.payload
    assert payload["text"] == "Analytics export: Reauthorize-by date approaching"
    body = json.dumps(payload["blocks"])
    for fact in ("Analytics Cloud", "data-team@example.com", "2027-03-08 09:30 UTC (in 7 days)"):
        assert fact in body
    assert "02:00 nightly-export run on Tue 2027-03-09 will fail" in body
    button = payload["blocks"][-1]["elements"][0]
    assert button["type"] == "button"
    assert button["url"] == "http://testserver/connections/analytics/"
    assert payload["dashboard_url"] == button["url"]
    for secret in [*secrets_of(connection), "/reauth/"]:
        assert secret not in json.dumps(payload) + message.text
    assert not ReauthLink.objects.exists()


def test_it_escapes_slack_control_characters(connection):
    Connection.objects.filter(pk=connection.pk).update(name="<!channel> & co")
    connection.refresh_from_db()

    message = render_message(warning(connection), channel_kind=SLACK)

    body = json.dumps(message.payload["blocks"])
    assert "<!channel>" not in body
    assert "&lt;!channel&gt; &amp; co" in body


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW + timedelta(days=7), "in 7 days"),
        (NOW + timedelta(days=6, hours=23, minutes=20), "in 6 days, 23 hours"),
        (NOW + timedelta(hours=1, minutes=5), "in 1 hour, 5 minutes"),
        (NOW - timedelta(hours=3), "3 hours ago"),
        (NOW + timedelta(seconds=30), "now"),
    ],
)
def test_it_says_times_relative_to_now(moment, expected):
    assert relative(moment, now=NOW) == expected


@pytest.mark.parametrize(
    ("left", "days"),
    [(timedelta(days=10), 10), (timedelta(days=10, seconds=1), 11), (timedelta(days=9.5), 10)],
)
def test_it_counts_days_until_expiry_so_that_at_most_ten_starts_exactly_ten_days_before(left, days):
    assert days_until(NOW + left, now=NOW) == days
