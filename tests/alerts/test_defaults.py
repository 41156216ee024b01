"""Defaults after install: every event to TOKENADMIN_ALERT_EMAILS and to each connection's
contact, declared idempotently by `setup_alerts` (which `setup_schedules` runs)."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from alerts import worker
from alerts.defaults import ALERT_EMAILS_CHANNEL, OWNER_CHANNEL, REMINDER_RULE
from alerts.models import AlertRule, Channel, Event, Notification
from connections.models import Connection

pytestmark = pytest.mark.django_db


def setup_alerts() -> str:
    out = StringIO()
    call_command("setup_alerts", stdout=out)
    return out.getvalue()


@pytest.fixture
def alert_emails(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {
        "ALERT_EMAILS": ["ops@example.com", "data@example.com"]
    }
    return settings


def test_it_sends_every_event_to_the_alert_emails_and_the_owner(alert_emails):
    output = setup_alerts()
    assert output.startswith("alert defaults: added channel 'Connection owner contact'")
    admins = Channel.objects.get(name=ALERT_EMAILS_CHANNEL)
    owner = Channel.objects.get(name=OWNER_CHANNEL)
    assert admins.email_addresses.split() == ["ops@example.com", "data@example.com"]
    assert (owner.email_addresses, owner.to_connection_contact) == ("", True)
    for event in Event:
        rule = AlertRule.objects.get(event=event, condition="")
        assert rule.all_connections and rule.enabled
        assert set(rule.channels.all()) == {admins, owner}
    assert AlertRule.objects.get(name=REMINDER_RULE).condition == "days_until_expiry <= 10"


def test_it_changes_nothing_when_run_again_and_keeps_an_admins_edits(alert_emails):
    setup_alerts()
    rule = AlertRule.objects.get(event=Event.HEALTH_FAILED)
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False, condition="failure_count >= 3")
    rule.channels.remove(Channel.objects.get(name=OWNER_CHANNEL))
    counts = (Channel.objects.count(), AlertRule.objects.count())

    assert setup_alerts().strip() == "alert defaults: in place"

    assert (Channel.objects.count(), AlertRule.objects.count()) == counts
    rule.refresh_from_db()
    assert (rule.enabled, rule.condition, rule.channels.count()) == (False, "failure_count >= 3", 1)


def test_it_adds_the_alert_emails_when_they_are_set_after_the_first_run(settings):
    setup_alerts()
    assert not Channel.objects.filter(name=ALERT_EMAILS_CHANNEL).exists()
    settings.TOKENADMIN = settings.TOKENADMIN | {"ALERT_EMAILS": ["ops@example.com"]}
    setup_alerts()
    admins = Channel.objects.get(name=ALERT_EMAILS_CHANNEL)
    assert AlertRule.objects.exclude(channels=admins).count() == 0


def test_it_takes_the_addresses_from_the_setting_when_it_changes(alert_emails):
    setup_alerts()
    alert_emails.TOKENADMIN = alert_emails.TOKENADMIN | {"ALERT_EMAILS": ["new@example.com"]}
    assert "updated channel" in setup_alerts()
    assert Channel.objects.get(name=ALERT_EMAILS_CHANNEL).email_addresses == "new@example.com"


def test_it_is_run_by_setup_schedules(alert_emails):
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    assert "alert defaults: added" in out.getvalue()
    assert Channel.objects.filter(name=ALERT_EMAILS_CHANNEL).exists()


def test_it_mails_a_revoked_grant_on_a_fresh_install_without_admin_work(
    alert_emails, authorized_connection, auth_server_clean
):
    from connections.lifecycle import TokenUnavailable, refresh_connection
    from connections.models import RefreshAttempt

    call_command("setup_schedules", stdout=StringIO())
    Connection.objects.filter(pk=authorized_connection.pk).update(contact_email="owner@example.com")
    auth_server_clean.revoke_all("alice")
    with pytest.raises(TokenUnavailable):
        refresh_connection(
            Connection.objects.select_related("provider").get(pk=authorized_connection.pk),
            trigger=RefreshAttempt.Trigger.FORCED,
            force=True,
        )
    worker.run_once()

    assert sorted(tuple(m.to) for m in mail.outbox) == [
        ("ops@example.com", "data@example.com"),
        ("owner@example.com",),
    ]
    assert set(Notification.objects.values_list("event", flat=True)) == {Event.NEEDS_REAUTH}
    assert all("/reauth/" in m.body for m in mail.outbox)  # a person must act: a fresh link
