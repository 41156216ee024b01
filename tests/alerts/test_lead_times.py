"""Warning lead times as durations (TOKENADMIN_WARNING_LEAD_TIMES=10m,5m; the demo's), the
whole-day spelling TOKENADMIN_WARNING_DAYS kept, and every reader on the one parsed setting."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from alerts.models import AlertRule, Channel, Event, Notification
from alerts.reminders import send_expiry_reminders
from connections.models import Connection, RefreshExpiry
from connections.status import evaluate_expiry
from connections.templatetags.countdown import warning_seconds
from tests.factories import ConnectionFactory, ProviderFactory
from tokenadmin import settings as project_settings
from tokenadmin.durations import format_duration, parse_duration

MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)
DEADLINE = datetime(2027, 3, 15, 9, 17, 30, tzinfo=UTC)
DEMO_LEADS = (10 * MINUTE, 5 * MINUTE)


@pytest.mark.parametrize(
    ("text", "expected", "label"),
    [
        ("10m", 10 * MINUTE, "10m"),
        ("90", 90 * DAY, "90d"),
        ("36h", timedelta(hours=36), "36h"),
        ("90s", timedelta(seconds=90), "90s"),
        ("120s", 2 * MINUTE, "2m"),
        (" 7D ", 7 * DAY, "7d"),
    ],
)
def test_it_reads_and_writes_durations(text, expected, label):
    assert parse_duration(text) == expected
    assert format_duration(expected) == label
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "0m", "10x", "-5m", "5 minutes", "1.5h"])
def test_it_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.fixture
def lead_env(monkeypatch):
    """Run settings' parser against a clean environment (either spelling unset)."""
    monkeypatch.delenv("TOKENADMIN_WARNING_LEAD_TIMES", raising=False)
    monkeypatch.delenv("TOKENADMIN_WARNING_DAYS", raising=False)
    monkeypatch.setattr(project_settings, "TOKENADMIN_DEMO", False)
    return monkeypatch


def test_it_defaults_to_14_7_3_and_1_days(lead_env):
    assert project_settings._warning_lead_times() == (14 * DAY, 7 * DAY, 3 * DAY, DAY)


def test_the_demo_defaults_to_10_and_5_minutes(lead_env):
    lead_env.setattr(project_settings, "TOKENADMIN_DEMO", True)
    assert project_settings._warning_lead_times() == DEMO_LEADS


def test_it_reads_lead_times_longest_first(lead_env):
    lead_env.setenv("TOKENADMIN_WARNING_LEAD_TIMES", "5m,2h,10m,5m")
    assert project_settings._warning_lead_times() == (2 * 60 * MINUTE, 10 * MINUTE, 5 * MINUTE)


def test_it_still_reads_warning_days(lead_env):
    lead_env.setenv("TOKENADMIN_WARNING_DAYS", "7,30")
    assert project_settings._warning_lead_times() == (30 * DAY, 7 * DAY)


@pytest.mark.parametrize("days", ["7,0", "-1"])
def test_it_refuses_a_warning_day_below_one_as_lead_times_refuse_0m(lead_env, days):
    lead_env.setenv("TOKENADMIN_WARNING_DAYS", days)
    with pytest.raises(ImproperlyConfigured, match="TOKENADMIN_WARNING_DAYS: each lead time"):
        project_settings._warning_lead_times()


def test_it_refuses_both_spellings_at_once(lead_env):
    lead_env.setenv("TOKENADMIN_WARNING_DAYS", "7")
    lead_env.setenv("TOKENADMIN_WARNING_LEAD_TIMES", "10m")
    with pytest.raises(ImproperlyConfigured, match="keep one"):
        project_settings._warning_lead_times()


def test_it_names_the_variable_of_a_bad_lead_time(lead_env):
    lead_env.setenv("TOKENADMIN_WARNING_LEAD_TIMES", "10m,soon")
    with pytest.raises(ImproperlyConfigured, match="TOKENADMIN_WARNING_LEAD_TIMES: 'soon'"):
        project_settings._warning_lead_times()


# --- every reader follows the parsed setting --------------------------------------------------


@pytest.fixture
def demo_leads(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"WARNING_LEAD_TIMES": DEMO_LEADS}


def absolute_connection() -> Connection:
    provider = ProviderFactory(
        refresh_token_expiry=RefreshExpiry.ABSOLUTE, refresh_token_lifetime=15 * MINUTE
    )
    return ConnectionFactory(authorized=True, provider=provider, refresh_expires_at=DEADLINE)


@pytest.mark.django_db
def test_it_is_expiring_from_the_longest_lead_time_in_minutes(demo_leads):
    connection = absolute_connection()
    assert evaluate_expiry(connection, now=DEADLINE - 11 * MINUTE)[0] == Connection.Status.ACTIVE
    assert evaluate_expiry(connection, now=DEADLINE - 9 * MINUTE) == (
        Connection.Status.EXPIRING,
        "reauthorize by 2027-03-15 09:17 UTC (9 min left)",
    )
    assert warning_seconds() == 600


@pytest.mark.django_db
def test_it_sends_a_reminder_at_each_lead_time_in_minutes(demo_leads):
    channel = Channel.objects.create(
        name="ops", kind=Channel.Kind.EMAIL, email_addresses="ops@example.com"
    )
    AlertRule.objects.create(name="all warnings", event=Event.EXPIRY_WARNING).channels.add(channel)
    absolute_connection()
    sent = {}
    # The demo runs the job every minute.
    with time_machine.travel(DEADLINE - 15 * MINUTE, tick=False) as clock:
        for minute in range(15, -2, -1):
            clock.move_to(DEADLINE - minute * MINUTE)
            for lead, count in send_expiry_reminders().items():
                sent[lead] = (minute, count)

    assert sent == {"T-10m": (10, 1), "T-5m": (5, 1)}
    assert sorted(Notification.objects.values_list("dedupe_key", flat=True)) == [
        "2027-03-15T09:17:30Z/T-10m",
        "2027-03-15T09:17:30Z/T-5m",
    ]
    # Minutes, not "1 day left", in the subject.
    assert mail.outbox[0].subject.endswith("by 2027-03-15 09:17 UTC (in 10 minutes)")
