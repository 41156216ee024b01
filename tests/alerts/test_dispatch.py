"""Rules pick channels; one notification row per channel and attempt state on it: retries with
back-off, broken channels, once-only keys."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.forms.models import model_to_dict
from django.utils import timezone

from alerts import dispatch, worker
from alerts.events import Alert
from alerts.messages import render_message
from alerts.models import Channel, Event, Notification
from tests.alerts.receiver import SECRET_PATH, WebhookReceiver, signature_ok
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

pytestmark = pytest.mark.django_db
SECRET = "webhook-signing-secret-0123456789"
Status = Notification.Status


@pytest.fixture
def connection():
    return ConnectionFactory(authorized=True, name="Analytics", contact_email="owner@example.com")


def needs_reauth(connection, **facts) -> Alert:
    return Alert(
        event=Event.NEEDS_REAUTH, connection=connection, facts={"reason": "invalid_grant", **facts}
    )


def rows() -> list[Notification]:
    return list(Notification.objects.order_by("pk"))


# --- who is told ----------------------------------------------------------------------------------
def test_it_sends_one_notification_per_channel_even_when_several_rules_match(connection):
    ops, data = ChannelFactory(email_addresses="ops@example.com"), ChannelFactory()
    first = AlertRuleFactory(channels=[ops])
    AlertRuleFactory(channels=[ops, data])
    AlertRuleFactory(event=Event.RECOVERED, channels=[ops])

    sent = dispatch.dispatch(needs_reauth(connection))

    assert [(n.channel, n.status) for n in sent] == [(ops, Status.SENT), (data, Status.SENT)]
    assert sent[0].rule == first
    assert len(mail.outbox) == 2
    assert mail.outbox[0].to == ["ops@example.com"]


def test_it_tells_a_rule_only_about_the_connections_it_chose(connection):
    other = ConnectionFactory(authorized=True)
    AlertRuleFactory(channels=[ChannelFactory()], connections=[other])
    assert dispatch.dispatch(needs_reauth(connection)) == []
    assert len(dispatch.dispatch(needs_reauth(other))) == 1


def test_it_sends_only_when_the_condition_holds_for_the_facts(connection):
    AlertRuleFactory(
        event=Event.EXPIRY_WARNING, condition="days_until_expiry <= 10", channels=[ChannelFactory()]
    )

    def warn(days):
        facts = {"days_until_expiry": days}
        return Alert(event=Event.EXPIRY_WARNING, connection=connection, facts=facts)

    assert dispatch.dispatch(warn(11)) == []
    assert dispatch.dispatch(warn(None)) == []
    assert len(dispatch.dispatch(warn(10))) == 1


def test_it_skips_a_rule_whose_condition_cannot_be_read(connection, caplog):
    rule = AlertRuleFactory(condition="days_until_expiry <<= 3", channels=[ChannelFactory()])
    assert dispatch.dispatch(needs_reauth(connection)) == []
    assert f"alert rule {rule.pk} has an unreadable condition" in caplog.text


def test_it_skips_disabled_rules_and_disabled_or_broken_channels(connection):
    AlertRuleFactory(enabled=False, channels=[ChannelFactory()])
    AlertRuleFactory(
        channels=[
            ChannelFactory(enabled=False),
            ChannelFactory(broken_at=timezone.now(), broken_reason="HTTP 410"),
        ]
    )
    assert dispatch.dispatch(needs_reauth(connection)) == []
    assert mail.outbox == []


def test_it_adds_the_connection_contact_when_the_channel_asks_for_it(connection):
    channel = ChannelFactory(email_addresses="ops@example.com", to_connection_contact=True)
    AlertRuleFactory(channels=[channel])
    [sent] = dispatch.dispatch(needs_reauth(connection))
    assert sent.recipient == "ops@example.com, owner@example.com"
    assert mail.outbox[0].to == ["ops@example.com", "owner@example.com"]


def test_it_writes_nothing_for_the_contact_channel_of_a_connection_without_a_contact():
    AlertRuleFactory(channels=[ChannelFactory(email_addresses="", to_connection_contact=True)])
    assert dispatch.dispatch(needs_reauth(ConnectionFactory(authorized=True))) == []
    assert rows() == []


def test_it_sends_a_keyed_alert_once_per_channel(connection):
    channel = ChannelFactory()
    AlertRuleFactory(event=Event.EXPIRY_WARNING, channels=[channel])
    alert = Alert(
        event=Event.EXPIRY_WARNING,
        connection=connection,
        facts={"days_until_expiry": 7, "lead": "T-7d"},
        dedupe_key="2027-03-15T09:17:30Z/T-7d",
    )
    assert len(dispatch.dispatch(alert)) == 1
    assert dispatch.dispatch(alert) == []
    assert len(mail.outbox) == 1
    AlertRuleFactory(event=Event.EXPIRY_WARNING, channels=[ChannelFactory()])
    assert len(dispatch.dispatch(alert)) == 1  # a new channel has not had it yet


def test_it_restricts_to_the_rules_it_is_given(connection):
    chosen = AlertRuleFactory(channels=[ChannelFactory(name="chosen")])
    AlertRuleFactory(channels=[ChannelFactory(name="other")])
    [sent] = dispatch.dispatch(needs_reauth(connection), rules=[chosen])
    assert sent.channel.name == "chosen"


# --- delivery state -------------------------------------------------------------------------------
def webhook_rule(url: str) -> Channel:
    channel = ChannelFactory(webhook=True, url=url, secret=SECRET)
    AlertRuleFactory(channels=[channel])
    return channel


def test_it_retries_a_500_with_back_off_and_then_succeeds(connection):
    with WebhookReceiver(500, 200) as receiver, time_machine.travel(timezone.now(), tick=False):
        webhook_rule(receiver.url)
        [first] = dispatch.dispatch(needs_reauth(connection))
        host = receiver.url.removeprefix("http://").removesuffix(SECRET_PATH)
        assert (first.status, first.response_code, first.attempts) == (Status.RETRYING, 500, 1)
        assert first.error == f"webhook at {host}: HTTP 500"
        delay = first.next_attempt_at - timezone.now()
        assert timedelta(seconds=60) <= delay <= timedelta(seconds=66)

        assert worker.run_once() == {}  # not due yet
        with time_machine.travel(first.next_attempt_at, tick=False):
            assert worker.run_once() == {"retried_sent": 1}
            assert signature_ok(receiver.received[-1], secret=SECRET)

    [done] = rows()
    assert (done.status, done.response_code, done.attempts, done.error) == (Status.SENT, 200, 2, "")
    assert done.sent_at == first.next_attempt_at
    assert len(receiver.received) == 2


def test_it_marks_a_channel_broken_on_410_and_stops_sending_to_it(connection, caplog):
    with WebhookReceiver(410) as receiver:
        channel = webhook_rule(receiver.url)
        [sent] = dispatch.dispatch(needs_reauth(connection))
        assert (sent.status, sent.response_code, sent.next_attempt_at) == (Status.FAILED, 410, None)
        channel.refresh_from_db()
        assert channel.broken_at is not None
        assert channel.broken_reason.endswith(": HTTP 410")

        assert dispatch.dispatch(needs_reauth(connection)) == []
        assert len(receiver.received) == 1
    assert f"alert channel {channel.pk} (webhook) marked broken" in caplog.text
    assert SECRET_PATH not in caplog.text


def test_it_fails_a_pending_retry_once_its_channel_broke(connection):
    with WebhookReceiver(503, 410) as receiver:
        webhook_rule(receiver.url)
        [retrying] = dispatch.dispatch(needs_reauth(connection))
        other = ChannelFactory(webhook=True, url=receiver.url)
        AlertRuleFactory(event=Event.RECOVERED, channels=[other])
        dispatch.dispatch(Alert(event=Event.RECOVERED, connection=connection))  # 410: broken
        Channel.objects.filter(pk=retrying.channel_id).update(broken_at=timezone.now())
        with time_machine.travel(retrying.next_attempt_at + timedelta(seconds=1)):
            worker.run_once()
    retrying.refresh_from_db()
    assert (retrying.status, retrying.error) == (Status.FAILED, "not sent: the channel is broken")
    assert len(receiver.received) == 2


def test_it_gives_up_after_the_last_attempt(connection):
    with WebhookReceiver(503) as receiver:
        webhook_rule(receiver.url)
        [notification] = dispatch.dispatch(needs_reauth(connection))
        for _ in range(dispatch.MAX_ATTEMPTS - 1):
            notification.refresh_from_db()
            with time_machine.travel(notification.next_attempt_at + timedelta(seconds=1)):
                worker.run_once()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Status.FAILED, dispatch.MAX_ATTEMPTS)
    assert len(receiver.received) == dispatch.MAX_ATTEMPTS
    assert Channel.objects.get().broken_at is None  # a flaky receiver is not a dead one


def test_it_waits_as_long_as_retry_after_asks(connection):
    with WebhookReceiver(429, headers={"Retry-After": "900"}) as receiver:
        webhook_rule(receiver.url)
        [sent] = dispatch.dispatch(needs_reauth(connection))
    assert sent.status == Status.RETRYING
    assert sent.next_attempt_at - timezone.now() >= timedelta(seconds=899)


def test_it_delivers_a_notification_whose_sender_died_once_its_claim_lapses(connection):
    AlertRuleFactory(channels=[ChannelFactory()])
    [orphan] = dispatch.create_notifications(needs_reauth(connection))  # then the process died
    assert worker.run_once() == {}
    with time_machine.travel(timezone.now() + timedelta(seconds=dispatch.CLAIM_SECONDS + 1)):
        assert worker.run_once() == {"retried_sent": 1}
    orphan.refresh_from_db()
    assert (orphan.status, orphan.attempts) == (Status.SENT, 2)
    assert len(mail.outbox) == 1


def test_it_doubles_the_delay_after_each_attempt():
    delays = [dispatch.retry_delay(n) for n in (1, 2, 3, 4)]
    for delay, base in zip(delays, (60, 120, 240, 480), strict=True):
        assert base <= delay <= base * 1.1
    assert dispatch.retry_delay(1, retry_after=10**9) == dispatch.MAX_RETRY_SECONDS


def test_it_stores_the_host_only_and_never_a_secret(connection, caplog):
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver(500) as receiver:
        slack = ChannelFactory(slack=True, url=receiver.url)
        hook = ChannelFactory(webhook=True, url=receiver.url, secret=SECRET)
        AlertRuleFactory(channels=[slack, hook])
        sent = dispatch.dispatch(needs_reauth(connection))
    host = receiver.url.removeprefix("http://").removesuffix(SECRET_PATH)
    assert [n.recipient for n in sent] == [host, host]
    for notification in rows():
        stored = repr(model_to_dict(notification))
        assert SECRET_PATH not in stored and SECRET not in stored
    assert SECRET_PATH not in caplog.text and SECRET not in caplog.text


def test_it_posts_the_rendered_slack_blocks_to_a_slack_channel(connection):
    with time_machine.travel(timezone.now(), tick=False), WebhookReceiver(200) as receiver:
        AlertRuleFactory(channels=[ChannelFactory(slack=True, url=receiver.url)])
        alert = needs_reauth(connection)
        [sent] = dispatch.dispatch(alert)
        rendered = render_message(alert, channel_kind=Channel.Kind.SLACK)
    assert sent.status == Status.SENT
    [request] = receiver.received
    assert request.json == rendered.payload
    assert request.json["text"] == f"{connection.name}: Needs reauthorization"
    header, reason, *_, actions = request.json["blocks"]
    assert header["text"]["text"] == f"*{connection.name}: Needs reauthorization*"
    assert reason["text"]["text"] == "invalid_grant"
    [button] = actions["elements"]
    assert button["url"] == f"http://testserver/connections/{connection.slug}/"
    assert "/reauth/" not in request.body.decode()
