"""Single flight (refresh rule 2): one provider call per expiry, across threads and processes.

Threads and processes each get their own database connection, so these tests commit their data
(`transaction=True`); the SQLite test database is a file for the same reason.
"""

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.db.models import F
from django.utils import timezone

from connections.lifecycle import ProviderUnavailable, get_access_token
from connections.models import Connection, RefreshAttempt

CALLERS = 50


def expire_now(connection: Connection) -> None:
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        access_expires_at=now, last_refreshed_at=now - timedelta(hours=1)
    )


def stored(connection: Connection) -> Connection:
    return Connection.objects.get(pk=connection.pk)


def assert_one_refresh_served_to_all(tokens: list[str], before: Connection, auth_server) -> None:
    assert len(tokens) == CALLERS
    assert auth_server.stats()["refresh_calls"] == 1
    assert set(tokens) == {stored(before).access_token}
    assert before.access_token not in tokens
    assert RefreshAttempt.objects.filter(connection=before).count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_refreshes_once_for_fifty_concurrent_threads(authorized_connection, auth_server_clean):
    auth_server_clean.set_latency(0.2)  # so every caller arrives while the refresh is in flight
    expire_now(authorized_connection)
    barrier = threading.Barrier(CALLERS)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            tokens.append(get_access_token(authorized_connection).access_token)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert_one_refresh_served_to_all(tokens, authorized_connection, auth_server_clean)


def _call_in_child(pk: int, barrier, results) -> None:
    try:
        barrier.wait(timeout=60)
        results.put(("ok", get_access_token(Connection.objects.get(pk=pk)).access_token))
    except BaseException as exc:
        results.put(("error", repr(exc)))
    finally:
        connections.close_all()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_refreshes_once_for_fifty_concurrent_processes(authorized_connection, auth_server_clean):
    auth_server_clean.set_latency(0.2)
    expire_now(authorized_connection)
    # Children must not share the parent's database socket: close it before forking.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CALLERS)
    results = context.Queue()
    children = [
        context.Process(target=_call_in_child, args=(authorized_connection.pk, barrier, results))
        for _ in range(CALLERS)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=90) for _ in children]
    for child in children:
        child.join(30)

    assert [message for kind, message in outcomes if kind == "error"] == []
    tokens = [token for _, token in outcomes]
    assert_one_refresh_served_to_all(tokens, authorized_connection, auth_server_clean)


def test_it_takes_over_the_lease_of_a_crashed_holder(authorized_connection, auth_server_clean):
    expire_now(authorized_connection)
    Connection.objects.filter(pk=authorized_connection.pk).update(
        lease_owner="dead-host:4242:1:deadbeef",
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    started = time.monotonic()
    served = get_access_token(authorized_connection)
    assert time.monotonic() - started < 5
    assert served.access_token != authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 1
    after = stored(authorized_connection)
    assert (after.lease_owner, after.lease_until) == ("", None)


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_a_live_holder_and_takes_its_token(authorized_connection, auth_server_clean):
    expire_now(authorized_connection)
    pk = authorized_connection.pk
    Connection.objects.filter(pk=pk).update(
        lease_owner="other-host:99:1:cafebabe", lease_until=timezone.now() + timedelta(seconds=30)
    )

    def holder() -> None:
        # Another process finishing its refresh: new tokens, version bump, lease released.
        try:
            time.sleep(0.3)
            now = timezone.now()
            Connection.objects.filter(pk=pk, lease_owner="other-host:99:1:cafebabe").update(
                access_token="HOLDER-ACCESS",
                refresh_token="HOLDER-REFRESH",
                access_expires_at=now + timedelta(hours=1),
                last_refreshed_at=now,
                version=F("version") + 1,
                lease_owner="",
                lease_until=None,
            )
        finally:
            db_connection.close()

    thread = threading.Thread(target=holder)
    started = time.monotonic()
    thread.start()
    served = get_access_token(authorized_connection)
    waited = time.monotonic() - started
    thread.join(10)

    assert served.access_token == "HOLDER-ACCESS"
    assert waited >= 0.3
    assert auth_server_clean.stats()["refresh_calls"] == 0


def test_it_gives_up_waiting_for_a_holder_that_never_finishes(
    authorized_connection, auth_server_clean, settings
):
    settings.TOKENADMIN = settings.TOKENADMIN | {"WAIT_SECONDS": 0.3}
    expire_now(authorized_connection)
    Connection.objects.filter(pk=authorized_connection.pk).update(
        lease_owner="stuck-host:7:1:0badf00d", lease_until=timezone.now() + timedelta(seconds=30)
    )
    with pytest.raises(ProviderUnavailable, match="another refresh is still running"):
        get_access_token(authorized_connection)
    assert auth_server_clean.stats()["refresh_calls"] == 0
    assert stored(authorized_connection).lease_owner == "stuck-host:7:1:0badf00d"
