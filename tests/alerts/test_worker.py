"""The alert worker: every row claimed once, mapped to the alert it means; the nudge."""

import threading
from importlib import import_module

import pytest
from django.apps import apps
from django.core import mail
from django.db import connection as db_connection
from django.utils import timezone

from alerts import worker
from alerts.models import Event, Notification
from alerts.sources import event_for_transition
from alerts.tasks import deliver_alerts
from connections.models import AuthorizationRequest, Connection, FailoverEvent, StatusChange
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

S = Connection.Status


def every_event_by_email(address: str = "ops@example.com"):
    channel = ChannelFactory(email_addresses=address)
    for event in Event:
        AlertRuleFactory(event=event, channels=[channel])
    return channel


def sent_events() -> list[str]:
    return list(Notification.objects.order_by("pk").values_list("event", flat=True))


@pytest.mark.parametrize(
    ("from_status", "to_status", "event"),
    [
        (S.ACTIVE, S.NEEDS_REAUTH, Event.NEEDS_REAUTH),
        (S.EXPIRING, S.NEEDS_REAUTH, Event.NEEDS_REAUTH),
        (S.DEGRADED, S.NEEDS_REAUTH, Event.NEEDS_REAUTH),  # worse news: a person must act now
        (S.ACTIVE, S.DEGRADED, Event.REFRESH_FAILED),
        (S.NEEDS_REAUTH, S.ACTIVE, Event.RECOVERED),
        (S.DEGRADED, S.ACTIVE, Event.RECOVERED),
        (S.NEEDS_REAUTH, S.EXPIRING, Event.RECOVERED),
        (S.NEEDS_REAUTH, S.DEGRADED, None),
        (S.PENDING, S.ACTIVE, None),  # the first authorization
        (S.ACTIVE, S.EXPIRING, None),  # deadlines are the reminders' job
        (S.EXPIRING, S.ACTIVE, None),
        (S.ACTIVE, S.DISABLED, None),
        (S.DISABLED, S.ACTIVE, None),
    ],
)
def test_it_maps_each_transition_to_the_news_it_is(from_status, to_status, event):
    assert event_for_transition(from_status, to_status) == event


@pytest.mark.django_db
def test_it_announces_a_status_change_once_with_its_facts():
    every_event_by_email()
    connection = ConnectionFactory(authorized=True, name="Analytics")
    connection.change_status(S.NEEDS_REAUTH, reason="invalid_grant: grant revoked")

    assert deliver_alerts() == "alerts=1, claimed=1, sent=1"
    assert deliver_alerts() == "nothing due"

    [notification] = Notification.objects.all()
    change = StatusChange.objects.get()
    assert (notification.event, notification.status_change) == (Event.NEEDS_REAUTH, change)
    assert change.processed_at is not None
    [email] = mail.outbox
    assert "Analytics" in email.subject


@pytest.mark.django_db
def test_it_claims_rows_that_are_no_news_without_telling_anyone():
    every_event_by_email()
    ConnectionFactory().change_status(S.ACTIVE, reason="authorized")
    assert deliver_alerts() == "claimed=1"
    assert StatusChange.objects.filter(processed_at__isnull=True).count() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_it_announces_a_failover_and_says_nothing_more_when_the_primary_recovery_did():
    every_event_by_email()
    backup = ConnectionFactory(authorized=True, slug="analytics-backup")
    primary = ConnectionFactory(authorized=True, backup=backup)
    primary.change_status(S.NEEDS_REAUTH, reason="invalid_grant")
    FailoverEvent.objects.create(connection=primary, backup=backup, kind="failover", reason="dead")
    worker.run_once()
    primary.change_status(S.ACTIVE, reason="reauthorized")
    FailoverEvent.objects.create(connection=primary, backup=backup, kind="failback")
    worker.run_once()

    assert sent_events() == [Event.NEEDS_REAUTH, Event.FAILOVER, Event.RECOVERED]
    failover = Notification.objects.get(event=Event.FAILOVER)
    assert failover.failover_event.kind == "failover"
    assert FailoverEvent.objects.filter(processed_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_it_announces_a_failback_as_recovered_when_no_status_change_did():
    every_event_by_email()
    backup = ConnectionFactory(authorized=True)
    primary = ConnectionFactory(authorized=True, backup=backup)
    FailoverEvent.objects.create(connection=primary, backup=backup, kind="failover")
    FailoverEvent.objects.create(connection=primary, backup=backup, kind="failback")
    worker.run_once()
    assert sent_events() == [Event.FAILOVER, Event.RECOVERED]


@pytest.mark.django_db
def test_it_announces_a_grant_refused_for_the_wrong_account_once():
    every_event_by_email()
    connection = ConnectionFactory(authorized=True, account_id="sub-1", account_label="alice")
    refused = AuthorizationRequest.objects.create(
        connection=connection,
        state_hash="s" * 64,
        browser_hash="b" * 64,
        code_verifier="verifier-secret-value",
        expires_at=timezone.now(),
        outcome="account_mismatch: consent was given as mallory. Nothing was stored.",
        held_account_label="mallory",
    )
    AuthorizationRequest.objects.create(
        connection=connection,
        state_hash="t" * 64,
        browser_hash="b" * 64,
        code_verifier="v",
        expires_at=timezone.now(),
        outcome="authorized",
    )
    worker.run_once()
    worker.run_once()
    [notification] = Notification.objects.all()
    assert notification.event == Event.ACCOUNT_MISMATCH
    assert notification.dedupe_key == f"authorization/{refused.pk}"
    refused.refresh_from_db()
    assert refused.processed_at is not None
    assert "verifier-secret-value" not in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_it_sends_each_alert_exactly_once_with_two_workers_racing():
    every_event_by_email()
    connections = [ConnectionFactory(authorized=True) for _ in range(12)]
    for connection in connections:
        connection.change_status(S.DEGRADED, reason="timeouts")
        connection.change_status(S.ACTIVE, reason="refreshed")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            worker.run_once()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    per_row = Notification.objects.values_list("status_change_id", flat=True)
    assert len(per_row) == len(set(per_row)) == 24
    assert len(mail.outbox) == 24


@pytest.mark.django_db
def test_it_gives_one_alert_and_one_recovered_notice_per_incident_however_often_it_polls(
    authorized_connection, auth_server_clean
):
    from connections.lifecycle import TokenUnavailable, refresh_connection
    from connections.models import RefreshAttempt
    from tests.conftest import authorize_through_link

    every_event_by_email()
    auth_server_clean.revoke_all("alice")
    for _ in range(5):
        with pytest.raises(TokenUnavailable):
            refresh_connection(
                Connection.objects.select_related("provider").get(pk=authorized_connection.pk),
                trigger=RefreshAttempt.Trigger.FORCED,
                force=True,
            )
        worker.run_once()
    assert authorize_through_link(authorized_connection, auth_server_clean).status_code == 200
    for _ in range(3):
        worker.run_once()

    assert sent_events() == [Event.NEEDS_REAUTH, Event.RECOVERED]
    needs_reauth_email, recovered_email = mail.outbox
    assert needs_reauth_email.to == recovered_email.to == ["ops@example.com"]


@pytest.mark.django_db
def test_it_queues_delivery_when_a_status_change_is_committed(django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    connection = ConnectionFactory(authorized=True)
    with django_capture_on_commit_callbacks(execute=True):
        connection.change_status(S.DEGRADED, reason="timeouts")
    [queued] = [task.task for task in OrmQ.objects.all()]
    assert queued["func"] == "alerts.tasks.deliver_alerts"


@pytest.mark.django_db
def test_it_never_lets_a_broken_broker_fail_the_write(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    import django_q.tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(django_q.tasks, "async_task", broker_down)
    connection = ConnectionFactory(authorized=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert connection.change_status(S.DEGRADED, reason="timeouts")
    assert "could not queue alert delivery after status_change" in caplog.text
    assert StatusChange.objects.filter(processed_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_it_treats_rows_from_before_the_worker_as_history():
    ConnectionFactory(authorized=True).change_status(S.NEEDS_REAUTH, reason="long ago")
    migration = import_module("alerts.migrations.0005_history_is_not_news")
    migration.mark_history_processed(apps, None)
    every_event_by_email()
    assert deliver_alerts() == "nothing due"
