"""The fire drill: "Send test alert" on rules and channels (admin) and `manage.py alerts test`,
each recorded as a notification with `is_test`; `manage.py alerts deliver`."""

from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from alerts.models import Channel, Event, Notification
from tests.alerts.receiver import SECRET_PATH, WebhookReceiver, signature_ok
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

pytestmark = pytest.mark.django_db
SECRET = "webhook-signing-secret-0123456789"


def run(*args: str) -> str:
    out = StringIO()
    call_command("alerts", *args, stdout=out)
    return out.getvalue()


def admin_action(client, model: str, action: str, pk: int) -> list[str]:
    response = client.post(
        reverse(f"admin:alerts_{model}_changelist"),
        {"action": action, "_selected_action": [pk]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_it_sends_a_rule_test_through_each_channel_and_records_it(admin_client):
    ConnectionFactory(authorized=True, name="Analytics")
    ops = ChannelFactory(name="Ops", email_addresses="ops@example.com")
    with WebhookReceiver(200) as receiver:
        hook = ChannelFactory(name="Hook", webhook=True, url=receiver.url, secret=SECRET)
        rule = AlertRuleFactory(event=Event.NEEDS_REAUTH, channels=[ops, hook])
        [message] = admin_action(admin_client, "alertrule", "send_test_alert", rule.pk)

    assert message == f"Test alert for rule {rule.name}: Ops: sent; Hook: sent"
    rows = list(Notification.objects.order_by("pk"))
    assert [(n.channel, n.is_test, n.status, n.rule) for n in rows] == [
        (ops, True, "sent", rule),
        (hook, True, "sent", rule),
    ]
    assert rows[0].connection.name == "Analytics"  # the test shows a real connection's facts
    [email] = mail.outbox
    assert "test" in email.subject.lower()
    assert "/reauth/" not in email.body  # a drill carries no working link
    [request] = receiver.received
    assert signature_ok(request, secret=SECRET)
    assert request.json["test"] is True


def test_it_tests_a_channel_even_when_it_is_broken_and_reports_the_failure(admin_client):
    with WebhookReceiver(410) as receiver:
        channel = ChannelFactory(name="Hook", slack=True, url=receiver.url)
        [message] = admin_action(admin_client, "channel", "send_test_alert", channel.pk)
    host = receiver.url.removeprefix("http://").removesuffix(SECRET_PATH)
    assert (
        message == f"Test alert for channel Hook: Hook: failed (Slack webhook at {host}: HTTP 410)"
    )
    assert SECRET_PATH not in message
    [notification] = Notification.objects.all()
    assert (notification.is_test, notification.status, notification.response_code) == (
        True,
        "failed",
        410,
    )
    channel.refresh_from_db()
    assert channel.broken_at is not None


def test_it_records_a_drill_of_a_channel_with_nobody_to_tell(admin_client):
    channel = ChannelFactory(name="Owners", email_addresses="", to_connection_contact=True)
    [message] = admin_action(admin_client, "channel", "send_test_alert", channel.pk)
    assert "Owners: failed (no recipient" in message
    assert Notification.objects.get().is_test


def test_it_runs_a_drill_from_the_command_line_by_id_or_name():
    rule = AlertRuleFactory(name="Dead grants", channels=[ChannelFactory(name="Ops")])
    by_id = run("test", str(rule.pk))
    by_name = run("test", "Dead grants")
    assert by_id.startswith("Ops\tops") and by_id.rstrip().endswith("\tsent")
    assert by_id == by_name
    assert Notification.objects.filter(is_test=True, rule=rule).count() == 2
    assert len(mail.outbox) == 2


def test_it_fails_the_command_when_a_channel_fails():
    with WebhookReceiver(503) as receiver:
        hook = ChannelFactory(name="Hook", webhook=True, url=receiver.url, secret=SECRET)
        rule = AlertRuleFactory(channels=[ChannelFactory(name="Ops"), hook])
        with pytest.raises(CommandError, match=r"1 of 2 channel\(s\) failed"):
            run("test", str(rule.pk))
    # Tried once: the person running the drill is waiting for the answer.
    assert len(receiver.received) == 1
    assert Notification.objects.get(channel=hook).status == Notification.Status.FAILED
    assert Channel.objects.get(pk=hook.pk).broken_at is None


@pytest.mark.parametrize(
    ("ref", "message"),
    [("999", "No alert rule with id or name '999'"), ("Nope", "No alert rule with id or name")],
)
def test_it_names_an_unknown_rule(ref, message):
    with pytest.raises(CommandError, match=message):
        run("test", ref)


def test_it_asks_for_the_id_when_two_rules_share_a_name():
    first = AlertRuleFactory(name="Twin", channels=[ChannelFactory()])
    second = AlertRuleFactory(name="Twin", channels=[ChannelFactory()])
    with pytest.raises(CommandError, match=f"ids {first.pk}, {second.pk}"):
        run("test", "Twin")


def test_it_delivers_from_the_command_line():
    AlertRuleFactory(channels=[ChannelFactory()])
    ConnectionFactory(authorized=True).change_status("needs_reauth", reason="invalid_grant")
    assert run("deliver").strip() == "alerts=1, claimed=1, sent=1"
    assert run("deliver").strip() == "nothing due"
    assert len(mail.outbox) == 1
