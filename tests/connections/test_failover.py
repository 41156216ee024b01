"""Failover (issue 6, item 2): a backup serves when the primary cannot, safely, recorded once.

Primary and backup are two grants at the test authorization server, by alice and bob; revoking
alice's grant kills the primary the way a provider would.
"""

import threading

import pytest
from django.db import connection as db_connection

from alerts import worker
from connections import services
from connections.lifecycle import ConnectionDisabled, NeedsReauth
from connections.models import ApiKey, Connection, FailoverEvent
from tests.conftest import authorize_through_link
from tests.factories import ConnectionFactory
from tests.support.cli import command_fails, run_command
from tests.support.tokens import api_client, authorized_at_server, expire_in, reload

Status = Connection.Status
Kind = FailoverEvent.Kind
URL = "/api/v1/connections/analytics/token"


@pytest.fixture
def backup(authorized_connection, dot_provider, auth_server_clean) -> Connection:
    backup = authorized_at_server(
        auth_server_clean, dot_provider, slug="analytics-backup", username="bob"
    )
    Connection.objects.filter(pk=authorized_connection.pk).update(backup=backup)
    return backup


@pytest.fixture
def both_keys(authorized_connection, backup) -> str:
    _, raw_key = ApiKey.issue(name="pipeline", connections=[authorized_connection, backup])
    return raw_key


def revoke_primary(primary: Connection, auth_server) -> None:
    auth_server.revoke_all("alice")
    expire_in(primary, 0)  # so the next request refreshes and learns of it


def events(primary: Connection) -> list[tuple[str, int | None]]:
    rows = FailoverEvent.objects.filter(connection=primary).order_by("created_at", "pk")
    return [(row.kind, row.backup_id) for row in rows]


def test_it_serves_the_backup_once_the_primary_is_revoked_and_records_it_once(
    authorized_connection, backup, both_keys, auth_server_clean
):
    revoke_primary(authorized_connection, auth_server_clean)
    client = api_client(both_keys)

    first = client.get(URL)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["connection"] == "analytics"
    assert body["served_by"] == "analytics-backup"
    assert body["access_token"] == reload(backup).access_token
    assert body["status"] == Status.NEEDS_REAUTH
    assert events(authorized_connection) == [(Kind.FAILOVER, backup.pk)]
    primary = reload(authorized_connection)
    assert primary.failed_over_to_id == backup.pk and primary.failed_over_at is not None

    for _ in range(3):
        again = client.get(URL)
        assert again.json()["served_by"] == "analytics-backup"
    assert events(authorized_connection) == [(Kind.FAILOVER, backup.pk)]
    assert auth_server_clean.stats()["refresh_calls"] == 1  # the dead grant is not retried


def test_it_serves_the_primary_again_once_reauthorized_and_records_the_failback_once(
    authorized_connection, backup, both_keys, auth_server_clean
):
    revoke_primary(authorized_connection, auth_server_clean)
    client = api_client(both_keys)
    assert client.get(URL).json()["served_by"] == "analytics-backup"

    assert authorize_through_link(authorized_connection, auth_server_clean).status_code == 200
    back = client.get(URL)
    assert back.status_code == 200
    assert back.json()["served_by"] == "analytics"
    assert back.json()["access_token"] == reload(authorized_connection).access_token
    assert events(authorized_connection) == [
        (Kind.FAILOVER, backup.pk),
        (Kind.FAILBACK, backup.pk),
    ]
    primary = reload(authorized_connection)
    assert primary.failed_over_to_id is None and primary.failed_over_at is None

    for _ in range(3):
        assert client.get(URL).json()["served_by"] == "analytics"
    assert len(events(authorized_connection)) == 2


def test_it_hands_the_failover_row_to_the_alert_worker(
    authorized_connection, backup, both_keys, auth_server_clean
):
    revoke_primary(authorized_connection, auth_server_clean)
    api_client(both_keys).get(URL)
    worker.run_once()
    row = FailoverEvent.objects.get(connection=authorized_connection)
    assert row.processed_at is not None
    assert "needs_reauth" in row.reason


def test_it_answers_with_the_primarys_error_when_the_key_may_not_use_the_backup(
    authorized_connection, backup, auth_server_clean
):
    _, primary_only = ApiKey.issue(name="primary only", connections=[authorized_connection])
    revoke_primary(authorized_connection, auth_server_clean)
    response = api_client(primary_only).get(URL)
    assert response.status_code == 409
    assert response.json()["error"] == "needs_reauth"
    assert reload(backup).access_token not in response.content.decode()
    assert events(authorized_connection) == []
    assert reload(authorized_connection).failed_over_to_id is None


@pytest.mark.parametrize("primary_token_valid", [True, False])
def test_it_never_serves_a_backup_for_a_disabled_primary(
    authorized_connection, backup, both_keys, auth_server_clean, primary_token_valid
):
    services.connection_disable(connection=authorized_connection, reason="retired", actor="t")
    if not primary_token_valid:
        expire_in(authorized_connection, 0)
    response = api_client(both_keys).get(URL)
    assert response.status_code == 409
    assert response.json()["error"] == "disabled"
    text = response.content.decode()
    assert reload(backup).access_token not in text
    assert reload(authorized_connection).access_token not in text
    assert events(authorized_connection) == []
    assert auth_server_clean.stats()["refresh_calls"] == 0


@pytest.mark.django_db
def test_it_follows_a_chain_of_backups_to_the_first_that_serves():
    c = ConnectionFactory(slug="c", authorized=True)
    b = ConnectionFactory(slug="b", authorized=True, status=Status.NEEDS_REAUTH, backup=c)
    a = ConnectionFactory(slug="a", authorized=True, status=Status.NEEDS_REAUTH, backup=b)
    served = services.token_serve(connection=a)
    assert (served.connection.slug, served.served.slug) == ("a", "c")
    assert served.served.access_token == c.access_token
    assert events(a) == [(Kind.FAILOVER, c.pk)]
    assert events(b) == []  # b was only passed over; the incident is a's


@pytest.mark.django_db
def test_it_passes_over_a_backup_in_the_chain_that_the_key_may_not_use():
    c = ConnectionFactory(slug="c", authorized=True)
    b = ConnectionFactory(slug="b", authorized=True, backup=c)
    a = ConnectionFactory(slug="a", authorized=True, status=Status.NEEDS_REAUTH, backup=b)
    key, _ = ApiKey.issue(name="a and c", connections=[a, c])
    served = services.token_serve(connection=a, key=key)
    assert served.served.slug == "c"


@pytest.mark.django_db
def test_it_stops_at_a_loop_written_behind_the_models_back():
    a = ConnectionFactory(slug="a", authorized=True, status=Status.NEEDS_REAUTH)
    b = ConnectionFactory(slug="b", authorized=True, status=Status.NEEDS_REAUTH, backup=a)
    Connection.objects.filter(pk=a.pk).update(backup=b)  # Connection.clean() would refuse it
    with pytest.raises(NeedsReauth, match=r"^a needs"):
        services.token_serve(connection=reload(a))
    assert events(a) == []


@pytest.mark.django_db
def test_it_does_not_fail_over_when_asked_not_to():
    b = ConnectionFactory(slug="b", authorized=True)
    a = ConnectionFactory(slug="a", authorized=True, status=Status.NEEDS_REAUTH, backup=b)
    with pytest.raises(NeedsReauth):
        services.token_serve(connection=a, failover=False)
    assert events(a) == []


@pytest.mark.django_db
def test_a_disabled_primary_raises_its_own_error_even_without_a_key():
    b = ConnectionFactory(slug="b", authorized=True)
    a = ConnectionFactory(slug="a", authorized=True, status=Status.DISABLED, backup=b)
    with pytest.raises(ConnectionDisabled):
        services.token_serve(connection=a)


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_write_one_failover_row():
    b = ConnectionFactory(slug="b", authorized=True)
    a = ConnectionFactory(slug="a", authorized=True, status=Status.NEEDS_REAUTH, backup=b)
    callers = 8
    barrier = threading.Barrier(callers)
    served: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            served.append(services.token_serve(connection=reload(a)).served.slug)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert served == ["b"] * callers
    assert events(a) == [(Kind.FAILOVER, b.pk)]


# --- the CLI behaves the same --------------------------------------------------------------


def test_the_cli_prints_the_backups_token_and_records_the_failover_once(
    authorized_connection, backup, auth_server_clean
):
    revoke_primary(authorized_connection, auth_server_clean)
    for _ in range(2):
        out, err = run_command("connection", "token", "analytics")
        assert out == reload(backup).access_token + "\n"
        assert "analytics-backup" in err
    assert events(authorized_connection) == [(Kind.FAILOVER, backup.pk)]

    assert authorize_through_link(authorized_connection, auth_server_clean).status_code == 200
    out, _ = run_command("connection", "token", "analytics")
    assert out == reload(authorized_connection).access_token + "\n"
    assert [kind for kind, _ in events(authorized_connection)] == [Kind.FAILOVER, Kind.FAILBACK]


def test_the_cli_refuses_to_fail_over_with_no_failover(
    authorized_connection, backup, auth_server_clean
):
    revoke_primary(authorized_connection, auth_server_clean)
    message = command_fails("connection", "token", "analytics", "--no-failover", returncode=3)
    assert "[needs_reauth]" in message
    assert reload(backup).access_token not in message
    assert events(authorized_connection) == []


def test_the_cli_never_serves_a_backup_for_a_disabled_primary(
    authorized_connection, backup, auth_server_clean
):
    services.connection_disable(connection=authorized_connection, reason="retired", actor="t")
    message = command_fails("connection", "token", "analytics", returncode=3)
    assert "[disabled]" in message
    assert events(authorized_connection) == []
